"""``mitiga models``: the registry in the model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, help="List, inspect, upload and roll back model versions.",
                  rich_markup_mode="markdown",
                  no_args_is_help=True)
console = Console()

StoreOption = Annotated[Path, typer.Option(envvar="MITIGA_MODEL_STORE_PATH", help="Model store root")]
UrlOption = Annotated[str, typer.Option(envvar="MITIGA_INFERENCE_URL", help="Inference service URL")]
TokenOption = Annotated[str | None, typer.Option(envvar="MITIGA_ADMIN_TOKEN", help="Admin bearer token")]
ModelName = Annotated[str, typer.Argument(help="The model's name")]


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _store(path: Path):  # type: ignore[no-untyped-def]
    from mitiga_core.store import FilesystemModelStore

    if not path.is_dir():
        raise fail(f"no model store at {path}")
    return FilesystemModelStore(path)


@app.command("list")
def list_models(store: StoreOption = Path("var/models")) -> None:
    """Every model with its champion and versions."""
    models = _store(store)
    from mitiga_core.promotion import Candidate, outcome

    table = Table("model", "champion", "on trial", "versions", "decisions", "last decision")
    for name in models.list_models():
        decisions = models.decisions(name)
        last = decisions[-1] if decisions else {}
        verdict = f"{outcome(last)} v{last.get('version')}" if last.get("version") else (outcome(last) if last
                                                                                          else "-")
        trial = Candidate.of(models.candidate(name))
        table.add_row(name, str(models.champion(name) or "-"), f"v{trial.version} ({trial.mode})" if trial else "-",
                      ", ".join(models.list_versions(name)), str(len(decisions)), verdict)
    console.print(table)


@app.command()
def show(name: ModelName, version: Annotated[str | None, typer.Option(help="Default: the champion")] = None,
         store: StoreOption = Path("var/models")) -> None:
    """A version's manifest: task, features, training window and metrics, lineage."""
    from mitiga_core.bundle import read_manifest
    from mitiga_core.errors import MitigaError

    models = _store(store)
    version = version or models.champion(name) or (models.list_versions(name) or [None])[-1]
    if version is None:
        raise fail(f"model {name!r} not found")
    try:
        manifest = read_manifest(models.path(name, version))
    except MitigaError as exc:
        raise fail(str(exc)) from None
    console.print(f"[bold]{name}[/bold] v{version} ({manifest.task}, {manifest.training.architecture})"
                  f"{'  [green]champion[/green]' if models.champion(name) == version else ''}")
    console.print(f"features: {', '.join(manifest.features)}" + (f", window {manifest.window}" if manifest.window
                                                                   else ""))
    if manifest.inputs:
        console.print("inputs: " + ", ".join(f"{i.name} {[-1, *i.shape]}" for i in manifest.inputs))
    answers = manifest.kind.answer_metadata(manifest)
    console.print("answers: " + ", ".join(f"{name} {datatype} {shape}" for name, datatype, shape in answers)
                  + (f"; classes: {', '.join(manifest.classes)}" if manifest.classes else ""))
    gate = next(iter(manifest.kind.gate_metrics))
    if manifest.units:
        console.print(f"units: {manifest.units} (answers and errors)")
    console.print(f"ground truth: {manifest.kind.truth_width(manifest)} value(s) per row"
                  + (" (a class name or index)" if manifest.classes else "") + f"; gate metric by default: {gate}")
    console.print(f"trained on {manifest.training.data_start} .. {manifest.training.data_end} "
                  f"({manifest.training.rows} rows, {manifest.training.epochs} epochs)")
    for key, value in sorted(manifest.training.metrics.items()):
        console.print(f"  {key}: {value:.4g}")
    lineage = manifest.lineage
    console.print(f"lineage: parent {lineage.parent or '-'}, trigger {lineage.trigger}, episode "
                  f"{lineage.episode_id or '-'}, strategy {lineage.strategy or '-'}, mode {lineage.mode or '-'}")
    console.print(f"champion history: {' → '.join(models.champion_history(name)) or '-'}")
    _show_trials(models, name)


def _show_trials(models, name: str) -> None:  # type: ignore[no-untyped-def]
    """The live trial under way, and the decisions of the trials and gates, with their numbers."""
    from mitiga_core.promotion import Candidate, outcome

    trial = Candidate.of(models.candidate(name))
    if trial is not None and not trial.live:
        console.print(f"[yellow]awaiting approval[/yellow]: v{trial.version} against champion v{trial.champion} "
                      f"since {trial.since} (`mitiga approvals show {name}`)", soft_wrap=True)
    elif trial is not None:
        share = f", answering {trial.canary_percent:g}% of requests" if trial.mode == "canary" else ""
        console.print(f"[yellow]on live trial[/yellow]: v{trial.version} in {trial.mode} against champion "
                      f"v{trial.champion} since {trial.since}{share}")
    decisions = [d for d in models.decisions(name) if d.get("metric") or d.get("approval")][-10:]
    if not decisions:
        return
    console.print("decisions:")
    for d in decisions:
        if d.get("approval"):
            console.print(f"  {str(d.get('time', ''))[:19]} v{d.get('version')} {outcome(d)}"
                          + (f" ({d['reason']})" if d.get("reason") else ""), soft_wrap=True)
            continue
        p_value = d.get("p_value")
        rows = d.get("labelled", d.get("holdout_rows", "?"))
        console.print(f"  {str(d.get('time', ''))[:19]} v{d.get('version') or '-'} {outcome(d)}: {d.get('metric')} "
                      f"{float(str(d.get('challenger', 0))):.4g} vs champion {float(str(d.get('champion', 0))):.4g} on "
                      f"{rows} rows" + ("" if p_value is None else f", p = {float(str(p_value)):.3g}")
                      + (f" ({d['reason']})" if d.get("reason") else ""), soft_wrap=True)


@app.command()
def upload(name: ModelName,
           file: Annotated[Path, typer.Argument(help="A .keras file or a bundle zip")],
           url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = None,
           features: Annotated[str | None, typer.Option(help="Comma-separated feature names")] = None,
           units: Annotated[str | None, typer.Option(help="What the answers are measured in (USD, mg/m³)")] = None,
           ) -> None:
    """Upload a .keras file or a bundle zip as a new version, through the inference service's admin API."""
    import httpx

    if not file.is_file():
        raise fail(f"no such file: {file}")
    params = {k: v for k, v in {"features": features, "units": units}.items() if v}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(f"{url}/v2/repository/models/{name}/upload", content=file.read_bytes(),
                              params=params, headers=headers, timeout=300)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        raise fail(response.json().get("error", response.text))
    console.print(f"uploaded {name} version {response.json()['version']}")


@app.command()
def rollback(name: ModelName, to: Annotated[str | None, typer.Option(help="Version to return to")] = None,
             store: StoreOption = Path("var/models"), url: UrlOption = "",
             token: TokenOption = None,
             announce: Annotated[bool, typer.Option(help="With MITIGA_BUS=kafka (and MITIGA_STATE=redis): tell "
                                                         "every inference replica, as a promotion does")] = True,
             ) -> None:
    """Make the previous champion (or --to) the champion again; the services configured in the environment are told
    (see --announce), and with --url that service loads it at once. Models pinned by the Helm chart roll back with
    `helm rollback` instead."""
    from mitiga_core.champion import rollback as roll_back
    from mitiga_core.errors import MitigaError

    try:
        rollout = roll_back(_store(store), name, to)
    except MitigaError as exc:
        raise fail(str(exc)) from None
    target = rollout.version
    console.print(f"{name}: champion {rollout.previous_version} → {target}")
    if announce:
        from mitiga_cli.announce import announce_champion

        try:
            done = announce_champion(rollout)
        except Exception as exc:  # Kafka or Redis unreachable: the store changed, the services did not hear it
            raise fail(f"the store changed, but the services were not told: {exc}") from None
        for line in done:
            console.print(line)
    if url:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{url}/v2/repository/models/{name}/load", params={"version": target},
                              headers=headers, timeout=300)
        if response.status_code >= 400:
            raise fail(f"the store changed, but the service did not load it: {response.json().get('error')}")
        console.print(f"{url} serves {name} v{target}")

