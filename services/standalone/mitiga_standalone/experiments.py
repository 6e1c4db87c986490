"""The research's two tests as commands, with plots.

- ``incremental`` (Test 1): train on 50%, 60% ... 90% of a series and evaluate on the next 10%, repeated with
  different seeds; the MSE per step with its spread, for the LSTM, RNN and Transformer, beside the naive forecast
  ("tomorrow = today") on the same days.
- ``production`` (Test 2): the demo's replay under three policies on the same stream: the frozen model, blind
  retraining on a schedule, and mitiga's informed retraining; MAE over the whole period and retrains for each.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pathlib import Path


def incremental(*, ticker: str = "amzn", archs: tuple[str, ...] = ("lstm", "rnn", "transformer"), repeats: int = 3,
                epochs: int = 3, fractions: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> dict[str, Any]:
    from mitiga_research.datasets import load_prices, sliding_windows
    from mitiga_research.modelzoo.training import train_forecaster

    from mitiga_core.metrics import regression_metrics

    series = load_prices(ticker)["open"]  # type: ignore[arg-type]
    n = len(series)
    results: dict[str, Any] = {}
    for arch in archs:
        per_step = []
        for fraction in fractions:
            train_end, test_end = int(n * fraction), min(n, int(n * (fraction + 0.1)))
            scores = []
            for seed in range(repeats):
                trained = train_forecaster(series.iloc[:train_end], name=arch, arch=arch, epochs=epochs, seed=seed)
                window = trained.manifest.window or 1
                x, y = sliding_windows(series.iloc[train_end - window : test_end].to_numpy(np.float32), window)
                m = trained.manifest
                pred = m.output_values(trained.model.predict(m.model_inputs(x), verbose=0, batch_size=256))
                scores.append(regression_metrics(y, pred[:, 0])["mse"])
            naive = float(np.mean((y - x[:, -1]) ** 2))  # "tomorrow = today" on the same days
            per_step.append({"train_fraction": fraction, "mse_mean": float(np.mean(scores)),
                             "mse_std": float(np.std(scores)), "mse": scores, "naive_mse": naive,
                             "test_first": str(series.index[train_end].date()),
                             "test_last": str(series.index[test_end - 1].date()), "test_rows": len(y)})
        results[arch] = per_step
    return {"ticker": ticker, "epochs": epochs, "repeats": repeats, "archs": results}


def production(*, epochs: int = 8, retrain_epochs: int = 5, step_months: int = 1, window_rows: int = 20,
               blind_every: str = "month", end: str | None = None,
               trigger_policy: str = "performance") -> dict[str, Any]:
    from mitiga_standalone.demo import replay

    runs = {policy: replay(epochs=epochs, step_months=step_months, window_rows=window_rows,
                           retrain_epochs=retrain_epochs, end=end, policy=policy, blind_every=blind_every,
                           trigger_policy=trigger_policy)
            for policy in ("informed", "blind")}
    return compare(runs["informed"], runs["blind"], trigger_policy)


def compare(informed_run: dict[str, Any], blind_run: dict[str, Any], trigger_policy: str) -> dict[str, Any]:
    """The experiment's summary of an informed and a blind replay of the same stream (``demo.replay``'s results),
    with the per-step rows (without the daily values) for the plot."""
    informed, blind = informed_run["summary"], blind_run["summary"]
    summary = {
        "frozen": {"mae": informed["mae_frozen"], "retrains": 0},
        "persistence": {"mae": informed["mae_persistence"], "retrains": 0},
        "blind": {"mae": blind["mae_served"], "retrains": blind["retrains_requested"]},
        "informed": {"mae": informed["mae_served"], "retrains": informed["retrains_requested"],
                     "trigger_policy": trigger_policy},
    }
    summary["targets"] = {
        "informed_mae_le_30pct_of_frozen": informed["mae_served"] <= 0.3 * informed["mae_frozen"],
        "informed_within_10pct_of_blind": informed["mae_served"] <= 1.1 * blind["mae_served"],
        "informed_retrains_le_third_of_blind": informed["retrains_requested"] * 3 <= blind["retrains_requested"],
    }
    runs = {"informed": informed_run, "blind": blind_run}
    return {"summary": summary, "runs": {p: {k: v for k, v in r.items() if k != "rows"} | {
        "steps": [{k: v for k, v in row.items() if k not in ("dates", "actual", "served", "frozen")}
                  for row in r["rows"]]} for p, r in runs.items()}}


def plot_incremental(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for arch, steps in result["archs"].items():
        x = [s["train_fraction"] for s in steps]
        ax.errorbar(x, [s["mse_mean"] for s in steps], yerr=[s["mse_std"] for s in steps], marker="o", label=arch,
                    capsize=3)
    steps = next(iter(result["archs"].values()))
    ax.plot([s["train_fraction"] for s in steps], [s["naive_mse"] for s in steps], color="black", linestyle=":",
            label="naive: tomorrow = today")
    ax.set_xlabel("share of the series trained on")
    ax.set_ylabel("MSE on the next 10%")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_production(result: dict[str, Any], path: Path) -> None:
    """MAE per step of the frozen model, the naive forecast and each policy's served model (log scale), with a tick
    at each step after which an informed retrain went live."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    informed = result["runs"]["informed"]["steps"]
    steps = [s["step"] for s in informed]
    ax.plot(steps, [s["mae_frozen"] for s in informed], label="frozen", color="grey")
    ax.plot(steps, [s["mae_persistence"] for s in informed], label="naive: tomorrow = today", color="black",
            linestyle=":")
    for policy, color in (("blind", "tab:orange"), ("informed", "tab:blue")):
        served = result["runs"][policy]["steps"]
        ax.plot([s["step"] for s in served], [s["mae_served"] for s in served], label=policy, color=color)
    retrained = [s["step"] for s in informed if s["next_version"] != s["version"]]
    ax.vlines(retrained, 0, 1, transform=ax.get_xaxis_transform(), colors="tab:blue", alpha=0.25,
              label=f"informed retrains ({len(retrained)})")
    ax.set_yscale("log")
    ax.set_ylabel("MAE per step (USD)")
    ax.set_xticks(ax.get_xticks()[:: max(1, len(informed) // 10)])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2, default=str))
