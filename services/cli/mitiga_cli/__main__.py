"""``mitiga``: models, status, drift reports and the standalone stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from mitiga_cli import approvals, models, retraining
from mitiga_cli.forecast import forecast
from mitiga_core.progress import RetrainStatus

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown")
app.add_typer(models.app, name="models")
app.add_typer(retraining.app, name="retraining")
app.add_typer(approvals.app, name="approvals")
app.command()(forecast)
console = Console()
DetectorUrl = Annotated[str, typer.Option(envvar="MITIGA_DETECTOR_URL", help="Drift detector URL")]


@app.command()
def status(store: models.StoreOption = Path("var/models"), detector: DetectorUrl = "http://127.0.0.1:8081") -> None:
    """Each model's champion, drift level and type, and last episode."""
    import httpx

    registry = models._store(store)
    table = Table("model", "champion", "drift level", "drift type", "why", "episode", "last window")
    for name in registry.list_models():
        try:
            state = httpx.get(f"{detector}/v1/models/{name}/drift", timeout=10).json()
        except httpx.HTTPError:
            state = {"level": "unknown (detector unreachable)"}
        last = state.get("last_window") or {}
        why = ", ".join(f"{r['signal']} {float(r['value']):.3g}" for r in last.get("deciding", [])) or "-"
        table.add_row(name, str(registry.champion(name) or "-"), str(state.get("level", "-")),
                      ", ".join(last.get("types", [])) or "-", why, str(state.get("episode_id") or "-")[:12],
                      str(last.get("window_end", "-")))
    console.print(table)


@app.command()
def report(name: models.ModelName,
           out: Annotated[Path, typer.Option(help="HTML file to write")] = Path("drift-report.html"),
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
    console.print(f"wrote {out}", soft_wrap=True)  # a path a person copies is never broken across lines


@app.command()
def retrain(
    name: models.ModelName,
    strategy: Annotated[Literal["full_history", "sliding_window", "gradual_forgetting"] | None,
                        typer.Option(help="full_history | sliding_window | gradual_forgetting")] = None,
    mode: Annotated[Literal["warm_start", "reset"] | None, typer.Option(help="warm_start | reset")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs")] = None,
    data_start: Annotated[str | None, typer.Option(help="First date of labelled data (ISO)")] = None,
    data_end: Annotated[str | None, typer.Option(help="Last date of labelled data (ISO)")] = None,
    detector: DetectorUrl = "http://127.0.0.1:8081",
    token: models.TokenOption = None,
    follow: Annotated[bool, typer.Option(help="Follow the run with a progress bar")] = True,
    timeout_s: Annotated[float, typer.Option(help="Give up following after this long")] = 3600,
) -> None:
    """Retrain a model now, and follow the run: epochs, loss, time left, and the gate's verdict."""
    import time

    import httpx
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    body = {k: v for k, v in {"strategy": strategy, "mode": mode, "epochs": epochs, "data_start": data_start,
                              "data_end": data_end}.items() if v is not None}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(f"{detector}/v1/models/{name}/retrain", json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise models.fail(f"cannot reach {detector}: {exc}") from None
    if response.status_code >= 400:
        raise models.fail(response.json().get("error", response.text))
    request_id = response.json()["request_id"]
    console.print(f"retrain {request_id} requested (base version {response.json()['base_version']})")
    if not follow:
        return
    deadline = time.monotonic() + timeout_s
    state: dict[str, object] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
               TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(name, total=1, loss="-")
        while time.monotonic() < deadline:
            found = httpx.get(f"{detector}/v1/retrains/{request_id}", timeout=10)
            state = found.json() if found.status_code == 200 else {}
            if state:
                loss = state.get("loss")
                bar.update(task, total=float(str(state.get("epochs", 1))), completed=float(str(state.get("epoch", 0))),
                           loss=f"{float(str(loss)):.4g}" if loss is not None else "-")
            if (found_status := RetrainStatus.of(state.get("status"))) is not None and found_status.finished:
                break
            time.sleep(0.5)
    status = RetrainStatus.of(state.get("status"))
    console.print(f"{name}: {status or 'unknown'}" + (f" as version {state['version']}" if state.get("version") else "")
                  + (f" ({state['reason']})" if state.get("reason") else ""))
    if status is None or not status.succeeded:
        raise typer.Exit(1)


experiment = typer.Typer(add_completion=False, help="The research's tests as commands, with plots.",
                         no_args_is_help=True)
app.add_typer(experiment, name="experiment")


@experiment.command("incremental")
def experiment_incremental(
    repeats: Annotated[int, typer.Option(min=1, help="Trainings per step (seeds)")] = 3,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of each model")] = 3,
    archs: Annotated[str, typer.Option(help="Comma-separated architectures")] = "lstm,rnn,transformer",
    fractions: Annotated[str, typer.Option(help="Comma-separated shares of the series to train on")] = (
        "0.5,0.6,0.7,0.8,0.9"),
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("out/experiments"),
) -> None:
    """Test 1: train on 50%..90% of the Amazon series, MSE on the next 10%, for LSTM, RNN and Transformer, beside
    the naive forecast "tomorrow = today" on the same days."""
    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise typer.BadParameter(f"not numbers: {fractions!r}", param_hint="--fractions") from None
    if not all(0 < f < 1 for f in shares):
        raise typer.BadParameter("each share must lie between 0 and 1", param_hint="--fractions")
    names = tuple(a.strip() for a in archs.split(",") if a.strip())
    known = {"lstm", "rnn", "transformer"}
    if not names or not set(names) <= known:
        raise typer.BadParameter(f"choose among {', '.join(sorted(known))}", param_hint="--archs")
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from mitiga_standalone import experiments

    result = experiments.incremental(repeats=repeats, epochs=epochs, archs=names, fractions=shares)
    out.mkdir(parents=True, exist_ok=True)
    experiments.write(result, out / "incremental.json")
    experiments.plot_incremental(result, out / "incremental.png")
    steps = next(iter(result["archs"].values()))
    table = Table("MSE on the next 10%", *[f"{round(s['train_fraction'] * 100)}%" for s in steps])
    for arch, arch_steps in result["archs"].items():
        table.add_row(arch, *[f"{s['mse_mean']:.3g} ± {s['mse_std']:.2g}" for s in arch_steps])
    table.add_row("naive: tomorrow = today", *[f"{s['naive_mse']:.3g}" for s in steps])
    console.print(table)
    console.print(f"wrote {out / 'incremental.json'} and {out / 'incremental.png'}", soft_wrap=True)


@experiment.command("production")
def experiment_production(
    step_months: Annotated[int, typer.Option(min=1, help="Months per replay step")] = 3,
    blind_every: Annotated[Literal["month", "quarter", "year"], typer.Option(help="month | quarter | year")] = (
        "quarter"),
    trigger_policy: Annotated[Literal["performance", "drift", "any"],
                              typer.Option(help="performance | drift | any, for informed retraining")] = "performance",
    end: Annotated[str | None, typer.Option(help="Last day of the replay (ISO; default: the end of the data)")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the first LSTM")] = 8,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="Epochs of each retraining")] = 5,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("out/experiments"),
) -> None:
    """Test 2: frozen vs blind scheduled vs informed retraining on the Amazon replay, MAE and retrains, beside the
    naive "tomorrow = today" forecast."""
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from mitiga_standalone import experiments

    result = experiments.production(step_months=step_months, blind_every=blind_every, trigger_policy=trigger_policy,
                                    end=end, epochs=epochs, retrain_epochs=retrain_epochs)
    out.mkdir(parents=True, exist_ok=True)
    experiments.write(result, out / "production.json")
    experiments.plot_production(result, out / "production.png")
    table = Table("policy", f"MAE 2004-{(end or '2017')[:4]}", "retrains")
    for policy, row in result["summary"].items():
        if policy != "targets":
            table.add_row(policy, f"{row['mae']:.2f}", str(row["retrains"]))
    console.print(table)
    console.print(result["summary"]["targets"])


@experiment.command("classifier")
def experiment_classifier(
    end: Annotated[str, typer.Option(help="Last day of the replay (ISO)")] = "2005-03-29",
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the first classifier")] = 20,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="Epochs of each retraining")] = 10,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("out/experiments"),
) -> None:
    """The shipped classifier: the Air Quality CO level trained on March-August 2004 and served through the winter
    with its labels; frozen vs monthly blind vs mitiga (accuracy, log loss, retrains), and CBPE's estimate against
    the realised accuracy."""
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    import json

    from mitiga_standalone.classifier_replay import compare, plot, replay

    runs = {policy: replay(policy=policy, end=end, epochs=epochs, retrain_epochs=retrain_epochs)
            for policy in ("informed", "blind")}
    result = compare(runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classifier.json").write_text(json.dumps(result, indent=2, default=str))
    plot(result, out / "classifier.png")
    table = Table("arm", "accuracy", "log loss", "retrains")
    for name, arm in result["arms"].items():
        table.add_row(name, f"{arm['accuracy']:.3f}", f"{arm['log_loss']:.3f}", str(arm["retrains"]))
    console.print(table)
    console.print(f"wrote {out / 'classifier.png'}", soft_wrap=True)


@app.command()
def up(store: models.StoreOption = Path("var/models"),
       inference_port: Annotated[int, typer.Option(help="The inference service's port")] = 8080,
       detector_port: Annotated[int, typer.Option(help="The detector's port")] = 8081,
       console_port: Annotated[int, typer.Option(help="The web console's port")] = 8090) -> None:
    """Run inference, detector, retrainer jobs and the web console together on this machine with the embedded
    adapters, until Ctrl-C or SIGTERM."""
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    import signal
    import threading

    from mitiga_core.logging import configure_logging
    from mitiga_standalone.console import start_console
    from mitiga_standalone.stack import StandaloneStack

    configure_logging("mitiga-standalone")
    store.mkdir(parents=True, exist_ok=True)
    # a signal at any moment from here on, while starting too, only asks to stop: what started is always stopped
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    stack = StandaloneStack(store, inference_port=inference_port, detector_port=detector_port,
                            detector={"trigger": "auto"})
    stack.start()
    web = None
    try:
        web = start_console(stack, console_port)
        console.print(f"inference {stack.inference.url}  detector {stack.detector.url}  console {web.url}  "
                      f"store {store}  (Ctrl-C stops)")
        stop.wait()
    finally:
        if web is not None:
            web.stop()
        stack.stop()


if __name__ == "__main__":
    app()
