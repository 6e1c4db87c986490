"""``mitiga-retrainer`` (``python -m mitiga_retrainer``): one retraining run, as a Kubernetes Job runs it.

The detector starts it with the ``RetrainRequest`` it published, as JSON, in ``MITIGA_RETRAIN_REQUEST`` (or
``--request``; ``mitiga_core.retrain_request``). By hand, the options below can be given instead, or on top (they
win); every option can also be set from the environment (``MITIGA_MODEL``, ``MITIGA_STRATEGY``, ...). Exit codes: 0
the run finished (promoted or refused by the gate) or had nothing to do (another run holds the model's lock), 2 the run
cannot be done (bad options or data, a failed rollout: the Job's ``podFailurePolicy`` does not retry it), anything
else a transient failure (the state store unreachable, a crash: the Job retries it).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    request: Annotated[str | None, typer.Option(help="The RetrainRequest as JSON (what the detector's Jobs get)",
                                                envvar="MITIGA_RETRAIN_REQUEST")] = None,
    model: Annotated[str | None, typer.Option(help="Model to retrain")] = None,
    base_version: Annotated[str | None, typer.Option(help="Version to start from (default: champion)")] = None,
    strategy: Annotated[str | None, typer.Option(help="full_history | sliding_window | gradual_forgetting")] = None,
    mode: Annotated[str | None, typer.Option(help="warm_start | reset")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs")] = None,
    request_id: Annotated[str | None, typer.Option(help="Idempotent request id")] = None,
    episode_id: Annotated[str | None, typer.Option(help="Triggering drift episode")] = None,
    trigger: Annotated[str | None, typer.Option(help="informed | blind | manual")] = None,
    data_start: Annotated[str | None, typer.Option(help="First date of labelled data to use")] = None,
    data_end: Annotated[str | None, typer.Option(help="Last date of labelled data to use")] = None,
) -> None:
    from mitiga_core.quiet import quiet_frameworks

    quiet_frameworks()
    from pydantic import ValidationError

    from mitiga_core import retrain_request
    from mitiga_core.adapters import build_bus, build_model_store, build_state
    from mitiga_core.errors import InvalidInput
    from mitiga_core.logging import configure_logging
    from mitiga_retrainer.job import JobFailed, Locked, run_job
    from mitiga_retrainer.settings import RetrainerSettings

    given: dict[str, Any] = {
        "model": model, "base_version": base_version, "strategy": strategy, "mode": mode, "epochs": epochs,
        "request_id": request_id, "episode_id": episode_id, "trigger": trigger, "data_start": data_start,
        "data_end": data_end,
    }
    try:
        asked = retrain_request.settings_fields(retrain_request.parse(request)) if request else {}
        settings = RetrainerSettings(**{**asked, **{k: v for k, v in given.items() if v is not None}})
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.service_name, settings.log_level)
    try:
        state = build_state(settings)
        result = run_job(settings, store=build_model_store(settings, state), state=state, bus=build_bus(settings))
    except JobFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Locked as exc:
        typer.echo(str(exc))
        return
    if result.decision is None:
        typer.echo(f"{settings.model}: version {result.version} promoted after its live trial")
        return
    verdict = (f"version {result.version} on live trial ({result.stage})" if result.stage
               else f"promoted as version {result.version}") if result.version else "refused by the gate"
    typer.echo(f"{settings.model}: {verdict} ({result.decision.reason})")


if __name__ == "__main__":
    sys.exit(app())
