"""``make demo``: the research's production simulation, replayed through mitiga's REST API.

1. Train the research LSTM on Amazon's daily Open price, 2000-01-01 to 2003-12-31.
2. Serve it with the inference service and watch it with the drift detector (embedded adapters, one process).
3. Replay 2004-2017 in 3-month steps through ``/v2/models/lstm/infer`` as a client would, and send the
   true prices to ``/v2/models/lstm/feedback``.
4. Print the MAE, drift level and drift type per step and write a JSON summary and a PNG chart.

The retrainer is not part of the loop yet: the detector runs with ``trigger=alert_only``.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, help=__doc__)


def _steps(dates: Any, start: str, months: int) -> list[tuple[Any, Any]]:
    import pandas as pd

    edges = pd.date_range(start, dates[-1] + pd.offsets.MonthBegin(1), freq=f"{months}MS")
    return list(itertools.pairwise(edges))


@app.command()
def main(
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the LSTM")] = 8,
    step_months: Annotated[int, typer.Option(min=1, help="Months per replay step")] = 3,
    window_rows: Annotated[int, typer.Option(min=5, help="Rows per drift-test window")] = 60,
    out: Annotated[Path, typer.Option(help="Where the summary and chart go")] = Path("out/demo"),
) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import httpx
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from mitiga_core.bundle import save_bundle
    from mitiga_core.datasets import load_prices, sliding_windows
    from mitiga_core.metrics import regression_metrics
    from mitiga_core.modelzoo.training import train_forecaster
    from mitiga_standalone.stack import StandaloneStack

    console = Console()
    prices = load_prices("amzn")["open"]
    with tempfile.TemporaryDirectory(prefix="mitiga-demo-") as tmp:
        stack = StandaloneStack(Path(tmp) / "models", detector={"window_size": window_rows})
        store = stack.store
        with console.status("training the LSTM on 2000-2003 ..."):
            trained = train_forecaster(prices.loc["2000-01-01":"2003-12-31"], name="lstm", arch="lstm", epochs=epochs)
            manifest = save_bundle(store, trained.manifest, trained.model, trained.reference, trained.training)
            store.set_champion("lstm", manifest.version)
        console.print(f"trained lstm v{manifest.version}: validation MAE {manifest.training.metrics['val_mae']:.3f}")

        stack.start()
        window = manifest.window or 50
        x_all, y_all = sliding_windows(prices.to_numpy(np.float32), window)
        target_dates = prices.index[window:]
        rows: list[dict[str, Any]] = []
        try:
            with httpx.Client(base_url=stack.inference.url, timeout=60) as client:
                while client.get("/v2/health/ready").status_code != 200:
                    pass
                for lo, hi in _steps(target_dates, "2004-01-01", step_months):
                    mask = (target_dates >= lo) & (target_dates < hi)
                    if not mask.any():
                        continue
                    x, y = x_all[mask], y_all[mask]
                    body = {"id": f"step-{lo.date()}", "parameters": {"data_time": lo.date().isoformat()},
                            "inputs": [{"name": "window", "shape": list(x.shape), "datatype": "FP32",
                                        "data": x.reshape(-1).tolist()}]}
                    response = client.post("/v2/models/lstm/infer", json=body)
                    response.raise_for_status()
                    served = response.json()
                    pred = np.asarray(served["outputs"][0]["data"], np.float32)
                    # ground truth arrives after the prediction, as it would in production
                    stack.wait_processed("InferenceEvent", len(rows) + 1)
                    client.post("/v2/models/lstm/feedback",
                                json={"request_id": served["id"], "ground_truth": y.tolist()}).raise_for_status()
                    stack.wait_processed("FeedbackEvent", len(rows) + 1)
                    metrics = regression_metrics(y, pred)
                    drift = stack.detector_core.state_of("lstm")
                    last = drift["last_window"] or {}
                    rows.append({"step": str(lo.date()), "rows": int(mask.sum()), "version": served["model_version"],
                                 "mae": metrics["mae"], "rmse": metrics["rmse"], "level": drift["level"],
                                 "types": last.get("types", []), "episode_id": drift["episode_id"],
                                 "dates": [d.date().isoformat() for d in target_dates[mask]],
                                 "actual": y.tolist(), "predicted": pred.tolist()})
        finally:
            stack.stop()

    table = Table(title="Amazon Open, LSTM trained on 2000-2003, served 2004-2017")
    for column in ("step", "rows", "serving", "MAE frozen", "RMSE", "drift level", "drift type"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["step"], str(row["rows"]), f"v{row['version']}", f"{row['mae']:.2f}", f"{row['rmse']:.2f}",
                      row["level"], ", ".join(row["types"]) or "-")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": "lstm", "trained_on": ["2000-01-01", "2003-12-31"], "epochs": epochs,
               "steps": [{k: v for k, v in r.items() if k not in ("dates", "actual", "predicted")} for r in rows]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _chart(rows, out / "demo.png")
    console.print(f"wrote {out / 'summary.json'} and {out / 'demo.png'}")


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    dates = pd.to_datetime([d for r in rows for d in r["dates"]])
    top.plot(dates, [v for r in rows for v in r["actual"]], label="actual", lw=1)
    top.plot(dates, [v for r in rows for v in r["predicted"]], label="served (frozen)", lw=1)
    top.set_ylabel("Open price (USD)")
    top.legend()
    bottom.bar(pd.to_datetime([r["step"] for r in rows]), [r["mae"] for r in rows], width=60)
    bottom.set_ylabel("MAE per step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    app()
