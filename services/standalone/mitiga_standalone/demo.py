"""``make demo``: the research's production simulation with mitiga closing the loop, through the REST API.

1. Train the research LSTM on Amazon's daily Open price, 2000-01-01 to 2003-12-31.
2. Run the standalone stack: inference, drift detector and in-process retrainer jobs on the embedded adapters.
3. Replay 2004-2017 in 3-month steps through ``/v2/models/lstm/infer`` as a client would, and send the true
   prices to ``/v2/models/lstm/feedback``. A retraining started in a step finishes before the next step begins.
4. Print, per step, the MAE of the frozen model and of the model mitiga serves, the drift level and type, and the
   retrains; write ``summary.json`` and ``demo.png``.
5. Open the web console on the stack (screenshots of its pages in ``out/console/``) and keep it up until Ctrl-C,
   unless ``--no-console``.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_standalone.stack import StandaloneStack

app = typer.Typer(add_completion=False, help=__doc__, rich_markup_mode="markdown")


def _steps(dates: Any, start: str, months: int) -> list[tuple[Any, Any]]:
    import pandas as pd

    edges = pd.date_range(start, dates[-1] + pd.offsets.MonthBegin(1), freq=f"{months}MS")
    return list(itertools.pairwise(edges))


def _forecast(client: Any, day: str, window: Any) -> dict[str, Any]:
    """One day's forecast, as a client of the service would ask for it: its own request, dated that day."""
    body = {"id": f"amzn-{day}", "parameters": {"data_time": day},
            "inputs": [{"name": "window", "shape": [1, len(window)], "datatype": "FP32", "data": window.tolist()}]}
    response = client.post("/v2/models/lstm/infer", json=body)
    response.raise_for_status()
    return dict(response.json())


def _settle(stack: Any, client: Any, requests: int) -> None:
    """A retrain takes minutes and the data comes a day at a time: once the detector has seen a window, let a
    retrain it asked for finish and go live before the next day is served. (Without this the replay, which serves a
    day in milliseconds, would keep a stale model for a quarter of data time while a few seconds of training run.)"""
    stack.wait_processed("InferenceEvent", requests)
    stack.launcher.wait_all()
    champion = stack.store.champion("lstm")
    while client.get("/v2/models/lstm").json()["parameters"]["version"] != champion:
        time.sleep(0.05)


def replay(*, epochs: int, step_months: int, window_rows: int, retrain_epochs: int, start: str = "2004-01-01",
           end: str | None = None, policy: str = "informed", blind_every: str = "month",
           trigger_policy: str = "performance", performance_window: int = 60,
           before_stop: Callable[[StandaloneStack, dict[str, Any]], None] | None = None,
           on_step: Callable[[int, int, list[dict[str, Any]] | None], None] | None = None) -> dict[str, Any]:
    """Run the simulation and return the per-step rows and the summary (used by the demo, the experiments and the
    test). ``policy``: ``informed`` (mitiga's retraining under ``trigger_policy``) or ``blind`` (on a data-time
    schedule). ``performance_window``: labelled rows the realised error is measured on; the ground truth arrives a
    step (a quarter, about 60 trading days) at a time, so a window of one step compares each quarter with the
    model's own validation error rather than averaging it with older quarters. ``before_stop`` gets the stack,
    still running, and the result once the replay is over (the demo reports, then opens the console on it);
    ``on_step`` gets (steps done, steps in all, the rows so far) when the replay starts and after each step."""
    import httpx
    import numpy as np
    from mitiga_research.datasets import load_prices, sliding_windows
    from mitiga_research.modelzoo.training import train_forecaster

    from mitiga_core.bundle import save_bundle
    from mitiga_core.metrics import regression_metrics
    from mitiga_inference.runtime import CompiledModel
    from mitiga_standalone.stack import StandaloneStack

    prices = load_prices("amzn")["open"]
    rows: list[dict[str, Any]] = []
    triggers: dict[str, Any] = {"trigger": "auto", "trigger_policy": trigger_policy} if policy == "informed" else {
        "trigger": "off", "blind_every": blind_every}
    with tempfile.TemporaryDirectory(prefix="mitiga-demo-") as tmp:
        stack = StandaloneStack(
            Path(tmp) / "models",
            detector={"window_size": window_rows, "cooldown_s": 0, "performance_window": performance_window,
                      **triggers},
            retrainer={"epochs": retrain_epochs, "strategy": "sliding_window", "window_rows": 500,
                       "holdout_rows": 60},
        )
        store = stack.store
        trained = train_forecaster(prices.loc["2000-01-01":"2003-12-31"], name="lstm", arch="lstm", epochs=epochs)
        first = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training,
                         trained.validation)
        store.set_champion("lstm", first.version)
        frozen = CompiledModel(store.path("lstm", first.version))
        window = first.window or 50
        x_all, y_all = sliding_windows(prices.to_numpy(np.float32), window)
        target_dates = prices.index[window:]
        stack.start()
        requests = 0
        try:
            with httpx.Client(base_url=stack.inference.url, timeout=120) as client:
                while client.get("/v2/health/ready").status_code != 200:
                    time.sleep(0.05)
                steps = _steps(target_dates[target_dates <= (end or target_dates[-1])], start, step_months)
                if on_step is not None:
                    on_step(0, len(steps), None)
                for done, (lo, hi) in enumerate(steps, start=1):
                    mask = (target_dates >= lo) & (target_dates < hi)
                    if not mask.any():
                        continue
                    x, y = x_all[mask], y_all[mask]
                    days = [d.date().isoformat() for d in target_dates[mask]]
                    answers = []
                    for day, row in zip(days, x, strict=True):
                        answers.append(_forecast(client, day, row))
                        requests += 1
                        if requests % window_rows == 0:
                            _settle(stack, client, requests)
                    pred = np.asarray([a["outputs"][0]["data"][0] for a in answers], np.float32)
                    frozen_pred = frozen(x)[:, 0]
                    # ground truth arrives after the predictions, as it would in production: a step's at once
                    stack.wait_processed("InferenceEvent", requests)
                    items = [{"request_id": a["id"], "ground_truth": [float(v)]}
                             for a, v in zip(answers, y, strict=True)]
                    client.post("/v2/models/lstm/feedback", json={"items": items}).raise_for_status()
                    stack.wait_processed("FeedbackEvent", len(rows) + 1)
                    drift = stack.detector_core.state_of("lstm")
                    stack.launcher.wait_all()
                    champion = store.champion("lstm")
                    while client.get("/v2/models/lstm").json()["parameters"]["version"] != champion:
                        time.sleep(0.05)
                    last = drift["last_window"] or {}
                    rows.append({
                        "step": str(lo.date()), "rows": int(mask.sum()), "version": answers[0]["model_version"],
                        "mae_frozen": regression_metrics(y, frozen_pred)["mae"],
                        "mae_served": regression_metrics(y, pred)["mae"], "level": drift["level"],
                        "mae_persistence": regression_metrics(y, x[:, -1])["mae"],  # tomorrow = today
                        "types": last.get("types", []), "episode_id": drift["episode_id"],
                        "retrain": last.get("trigger"), "next_version": champion,
                        "decided_by": last.get("decided_by", ""), "mae_ratio": last.get("mae_ratio"),
                        "dates": days,
                        "actual": y.tolist(), "served": pred.tolist(), "frozen": frozen_pred.tolist(),
                    })
                    if on_step is not None:
                        on_step(done, len(steps), rows)
            decisions = store.decisions("lstm")
            result = {"rows": rows, "decisions": decisions, "summary": summarize(rows, decisions)}
            if before_stop is not None:
                before_stop(stack, result)
        finally:
            stack.stop()
    return result


def summarize(rows: list[dict[str, Any]], decisions: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    weights = np.asarray([r["rows"] for r in rows], np.float64)
    frozen = float(np.average([r["mae_frozen"] for r in rows], weights=weights))
    served = float(np.average([r["mae_served"] for r in rows], weights=weights))
    naive = float(np.average([r["mae_persistence"] for r in rows], weights=weights))
    mitigations = []
    for i, row in enumerate(rows):
        if row["next_version"] != row["version"] and row["level"] == "critical":  # an informed retrain
            critical = next((j for j in range(i, -1, -1) if rows[j]["level"] != "critical"), -1) + 1
            mitigations.append({"episode_id": row["episode_id"], "first_critical_step": rows[critical]["step"],
                                "serving_from_step": rows[i + 1]["step"] if i + 1 < len(rows) else None,
                                "steps": i + 1 - critical, "version": row["next_version"]})
    return {"mae_frozen": frozen, "mae_served": served, "mae_persistence": naive,
            "ratio": served / frozen if frozen else None,
            "retrains_requested": len(decisions), "promoted": sum(1 for d in decisions if d.get("promote")),
            "mitigations": mitigations}


@app.command()
def main(
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the first LSTM")] = 8,
    retrain_epochs: Annotated[int, typer.Option(min=1, help="Epochs of each retraining")] = 5,
    step_months: Annotated[int, typer.Option(min=1, help="Months per replay step")] = 3,
    window_rows: Annotated[int, typer.Option(min=5, help="Rows per drift-test window")] = 60,
    trigger_policy: Annotated[Literal["performance", "drift", "any"],
                              typer.Option(help="performance | drift | any (MITIGA_TRIGGER_POLICY)")] = (
        "performance"),
    out: Annotated[Path, typer.Option(help="Where the summary and chart go")] = Path("out/demo"),
    open_console: Annotated[bool, typer.Option("--console/--no-console", help="Open the web console on the stack at "
                                               "the end and keep it up until Ctrl-C")] = True,
    console_port: Annotated[int, typer.Option(help="The console's port")] = 8090,
) -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from rich.console import Console

    from mitiga_standalone.console import ConsoleOnStack

    console = Console()
    started = time.monotonic()
    shown = ConsoleOnStack(console_port, out.parent / "console") if open_console else None
    bar = _ProgressBar(console)

    def finish(stack: StandaloneStack, result: dict[str, Any]) -> None:
        bar.stop()
        _report(console, result, out, trigger_policy, started)
        if shown is not None:  # on the stack that served the replay, still running
            shown.serve_until_interrupted(console, stack)

    try:
        replay(epochs=epochs, step_months=step_months, window_rows=window_rows, retrain_epochs=retrain_epochs,
               trigger_policy=trigger_policy, before_stop=finish, on_step=bar.step)
    finally:
        bar.stop()


class _ProgressBar:
    """The demo's live line: training, then each quarter served with the MAE so far and the retrains so far."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console)
        self._task = self._progress.add_task("training the LSTM on 2000-2003", total=None, detail="")
        self._progress.start()

    def step(self, done: int, total: int, rows: list[dict[str, Any]] | None) -> None:
        detail = ""
        if rows:
            served = sum(r["mae_served"] * r["rows"] for r in rows) / sum(r["rows"] for r in rows)
            retrains = sum(1 for r in rows if r["next_version"] != r["version"])
            detail = f"quarter {rows[-1]['step']}  MAE so far {served:.2f} USD  new versions {retrains}"
        self._progress.update(self._task, description="serving 2004-2017 through mitiga", total=total,
                              completed=done, detail=detail)

    def stop(self) -> None:
        self._progress.stop()


def _report(console: Any, result: dict[str, Any], out: Path, trigger_policy: str, started: float) -> None:
    from rich.table import Table

    rows, summary = result["rows"], result["summary"]
    table = Table(title="Amazon Open: LSTM trained on 2000-2003, served 2004-2017 by mitiga",
                  caption="drift type: d = data, p = prediction, c = concept")
    for column in ("step", "serving", "MAE frozen", "MAE mitiga", "drift", "type", "retrain"):
        table.add_column(column, justify="right")
    for row in rows:
        retrain = "" if row["next_version"] == row["version"] else f"v{row['next_version']}"
        if row["retrain"] and not retrain:
            retrain = "refused" if row["retrain"] == "requested" else str(row["retrain"])
        table.add_row(row["step"], f"v{row['version']}", f"{row['mae_frozen']:.2f}", f"{row['mae_served']:.2f}",
                      row["level"], "".join(t[0] for t in row["types"]) or "-", retrain)
    console.print(table)
    console.print(f"MAE over the same days: the frozen model {summary['mae_frozen']:.2f} USD, the model mitiga served "
                  f"{summary['mae_served']:.2f} ({summary['ratio']:.0%} of frozen), the naive forecast \"tomorrow = "
                  f"today\" {summary['mae_persistence']:.2f}.")
    console.print(f"Trigger policy {trigger_policy}: retrains requested {summary['retrains_requested']}, promoted "
                  f"{summary['promoted']}.")
    for m in summary["mitigations"]:
        console.print(f"episode {str(m['episode_id'])[:8]}: critical from {m['first_critical_step']}, "
                      f"v{m['version']} serving from {m['serving_from_step']} ({m['steps']} step(s))")
    out.mkdir(parents=True, exist_ok=True)
    light = [{k: v for k, v in r.items() if k not in ("dates", "actual", "served", "frozen")} for r in rows]
    (out / "summary.json").write_text(json.dumps({**summary, "steps": light, "decisions": result["decisions"],
                                                  "seconds": time.monotonic() - started}, indent=2, default=str))
    _chart(rows, out / "demo.png")
    console.print(f"wrote {out / 'summary.json'} and {out / 'demo.png'} in {time.monotonic() - started:.0f} s",
                  soft_wrap=True)


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    dates = pd.to_datetime([d for r in rows for d in r["dates"]])
    top.plot(dates, [v for r in rows for v in r["actual"]], label="actual", lw=1)
    top.plot(dates, [v for r in rows for v in r["frozen"]], label="frozen model", lw=1)
    top.plot(dates, [v for r in rows for v in r["served"]], label="served by mitiga", lw=1)
    top.set_ylabel("Open price (USD)")
    top.legend()
    steps = pd.to_datetime([r["step"] for r in rows])
    bottom.plot(steps, [r["mae_frozen"] for r in rows], marker="o", label="frozen")
    bottom.plot(steps, [r["mae_served"] for r in rows], marker="o", label="mitiga")
    for r in rows:
        if r["next_version"] != r["version"]:
            bottom.axvline(pd.Timestamp(r["step"]), color="grey", lw=0.5)
    bottom.set_ylabel("MAE per step")
    bottom.set_yscale("log")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    app()
