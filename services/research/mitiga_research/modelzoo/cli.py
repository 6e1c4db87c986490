"""``mitiga-train``: train a reference model on the vendored data and register it in the model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    arch: Annotated[str, typer.Option(help="lstm | rnn | transformer | regressor")] = "lstm",
    name: Annotated[str | None, typer.Option(help="Model name (default: the architecture)")] = None,
    dataset: Annotated[str, typer.Option(help="amzn | goog (forecasters); the regressor uses air quality")] = "amzn",
    column: Annotated[str, typer.Option(help="Price column to forecast")] = "open",
    start: Annotated[str, typer.Option(help="First day of training data")] = "2000-01-01",
    end: Annotated[str, typer.Option(help="Last day of training data")] = "2003-12-31",
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs")] = 5,
    store: Annotated[Path, typer.Option(envvar="MITIGA_MODEL_STORE_PATH", help="Model store")] = Path("var/models"),
    champion: Annotated[bool, typer.Option(help="Make the new version the champion")] = True,
) -> None:
    from mitiga_core.bundle import save_bundle
    from mitiga_core.store import FilesystemModelStore
    from mitiga_research.datasets import load_air_quality, load_prices
    from mitiga_research.modelzoo.training import train_forecaster, train_regressor

    name = name or arch
    if arch == "regressor":
        frame = load_air_quality().loc[start:end]
        trained = train_regressor(frame, name=name, epochs=epochs)
    else:
        if dataset not in ("amzn", "goog"):
            raise typer.BadParameter(f"unknown dataset {dataset!r}", param_hint="--dataset")
        series = load_prices(dataset)[column].loc[start:end]  # type: ignore[arg-type]
        try:
            trained = train_forecaster(series, name=name, arch=arch, epochs=epochs)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    models = FilesystemModelStore(store)
    manifest = save_bundle(models, trained.manifest, trained.model, trained.reference, trained.training,
                           trained.validation)
    if champion:
        models.set_champion(name, manifest.version)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in manifest.training.metrics.items() if k.startswith("val_"))
    typer.echo(f"registered {name} version {manifest.version} ({metrics})")


if __name__ == "__main__":
    app()
