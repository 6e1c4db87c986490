"""``python -m mitiga_devstack up|down|status`` (``make up`` / ``make down``): the multi-process stack on 127.0.0.1.

``up`` starts Kafka, Redis, Alertmanager with a webhook receiver, Prometheus, and the inference and detector
services, seeds the model store with the research LSTM when it is empty, and writes what it started (pids, URLs,
logs) to ``<root>/stack.json``. ``down`` stops exactly those processes, by pid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True, rich_markup_mode="markdown")
ROOT = Path(os.environ.get("MITIGA_DEVSTACK_ROOT", "var/devstack"))


def _seed(store_root: Path) -> None:
    from mitiga_research.datasets import load_prices
    from mitiga_research.modelzoo.training import train_forecaster

    from mitiga_core.bundle import save_bundle
    from mitiga_core.store import FilesystemModelStore

    store = FilesystemModelStore(store_root)
    if store.list_models():
        return
    typer.echo("seeding the model store: the research LSTM on Amazon 2000-2003 (a few epochs)")
    prices = load_prices("amzn")["open"]
    trained = train_forecaster(prices.loc["2000-01-01":"2003-12-31"], name="lstm", arch="lstm", epochs=5)
    bundle = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training,
                         trained.validation)
    store.set_champion("lstm", bundle.version)


def tokens() -> tuple[str, str]:
    """The stack's admin and feedback tokens: ``MITIGA_ADMIN_TOKEN`` and ``MITIGA_FEEDBACK_TOKEN`` when set, otherwise
    new random ones (feedback steers what is retrained, so it is never open, not even on a laptop)."""
    import secrets

    return (os.environ.get("MITIGA_ADMIN_TOKEN") or secrets.token_urlsafe(24),
            os.environ.get("MITIGA_FEEDBACK_TOKEN") or secrets.token_urlsafe(24))


@app.command()
def up(root: Annotated[Path, typer.Option(help="Where data, logs and stack.json go.")] = ROOT) -> None:
    """Start the stack (stop a running one first with `down`)."""
    from mitiga_devstack.stack import DevStack

    root = root.resolve()
    state = root / "stack.json"
    if state.exists():
        raise typer.BadParameter(f"a stack is already up (see {state}); run `make down` first")
    root.mkdir(parents=True, exist_ok=True)
    _seed(root / "models")
    admin_token, feedback_token = tokens()
    stack = DevStack(root, root / "models", admin_token=admin_token, feedback_token=feedback_token,
                     detector_env={"MITIGA_WINDOW_SIZE": "60"}, well_known_ports=True, console=True)
    stack.add_webhook_process()
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    stack.write_state(state)
    typer.echo(json.dumps(stack.describe()["urls"], indent=2))
    typer.echo(f"admin token: {stack.admin_token}\nfeedback token: {stack.feedback_token}\nstop with `make down`")


@app.command()
def down(root: Annotated[Path, typer.Option(help="The stack's folder (as given to up).")] = ROOT) -> None:
    """Stop what `up` started."""
    from mitiga_devstack.stack import stop_from_state

    stopped = stop_from_state(root.resolve() / "stack.json")
    typer.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(root: Annotated[Path, typer.Option(help="The stack's folder (as given to up).")] = ROOT) -> None:
    """Show what `up` started and whether each process still runs."""
    state = root.resolve() / "stack.json"
    if not state.exists():
        typer.echo("no stack is up")
        raise typer.Exit(1)
    described = json.loads(state.read_text())
    for name, pid in described["pids"].items():
        try:
            os.kill(int(pid), 0)
            alive = "running"
        except ProcessLookupError:
            alive = "gone"
        typer.echo(f"{name:13} pid {pid:>7}  {alive}")
    typer.echo(json.dumps(described["urls"], indent=2))


if __name__ == "__main__":
    app()
