"""``mitiga``: models, status, drift reports and the standalone stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mitiga_cli import models

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(models.app, name="models")
console = Console()
DetectorUrl = Annotated[str, typer.Option(envvar="MITIGA_DETECTOR_URL", help="Drift detector URL")]


@app.command()
def status(store: models.StoreOption = Path("var/models"), detector: DetectorUrl = "http://127.0.0.1:8081") -> None:
    """Each model's champion, drift level and type, and last episode."""
    import httpx

    registry = models._store(store)
    table = Table("model", "champion", "drift level", "drift type", "episode", "last window")
    for name in registry.list_models():
        try:
            state = httpx.get(f"{detector}/v1/models/{name}/drift", timeout=10).json()
        except httpx.HTTPError:
            state = {"level": "unknown (detector unreachable)"}
        last = state.get("last_window") or {}
        table.add_row(name, str(registry.champion(name) or "-"), str(state.get("level", "-")),
                      ", ".join(last.get("types", [])) or "-", str(state.get("episode_id") or "-")[:12],
                      str(last.get("window_end", "-")))
    console.print(table)


@app.command()
def report(name: str, out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("drift-report.html"),
           detector: DetectorUrl = "http://127.0.0.1:8081") -> None:
    """Write the detector's HTML drift report for a model."""
    import httpx

    try:
        response = httpx.get(f"{detector}/v1/models/{name}/drift/report", timeout=60)
    except httpx.HTTPError as exc:
        raise models.fail(f"cannot reach {detector}: {exc}") from None
    if response.status_code != 200:
        raise models.fail(response.json().get("error", response.text))
    out.write_text(response.text)
    console.print(f"wrote {out}")


@app.command()
def up(store: models.StoreOption = Path("var/models"), inference_port: int = 8080, detector_port: int = 8081) -> None:
    """Run inference, detector and retrainer jobs together on this machine with the embedded adapters."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import threading

    from mitiga_core.logging import configure_logging
    from mitiga_standalone.stack import StandaloneStack

    configure_logging("mitiga-standalone")
    store.mkdir(parents=True, exist_ok=True)
    stack = StandaloneStack(store, inference_port=inference_port, detector_port=detector_port,
                            detector={"trigger": "auto"})
    stack.start()
    console.print(f"inference {stack.inference.url}  detector {stack.detector.url}  store {store}  (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    app()
