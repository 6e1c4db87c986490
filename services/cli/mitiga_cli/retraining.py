"""``mitiga retraining``: see, pause and resume a model's automatic retraining (the circuit breaker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from mitiga_cli.models import ModelName, TokenOption, console, fail

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="See, pause and resume a model's automatic retraining (manual retraining is never paused).")
DetectorUrl = Annotated[str, typer.Option(envvar="MITIGA_DETECTOR_URL", help="Drift detector URL")]
By = Annotated[str, typer.Option(envvar="USER", help="Who decides (recorded with a pause)")]


def _call(method: str, url: str, token: str | None = None, body: dict[str, str] | None = None) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        raise fail(response.json().get("error", response.text))
    return dict(response.json())


def _say(found: dict[str, Any]) -> None:
    paused, limits = found.get("paused"), found["limits"]
    if paused:
        since = datetime.fromtimestamp(float(paused["since"]), UTC).strftime("%Y-%m-%d %H:%M UTC")
        console.print(f"{found['model']}: automatic retraining paused since {since} by {paused['by']}: "
                      f"{paused['reason']}", soft_wrap=True)
    else:
        console.print(f"{found['model']}: automatic retraining runs", soft_wrap=True)
    console.print(f"refused or failed in a row: {found['failed_in_a_row']} (pauses at {limits['failures']}); "
                  f"automatic requests in the period: {found['recent_requests']} (pauses past {limits['retrains']} "
                  f"in {limits['period_s'] / 86400:g} days)", soft_wrap=True)


@app.command()
def status(name: ModelName, detector: DetectorUrl = "http://127.0.0.1:8081") -> None:
    """Whether the model's automatic retraining runs or is paused, why, and the circuit breaker's counts."""
    _say(_call("GET", f"{detector}/v1/models/{name}/retraining"))


@app.command()
def pause(name: ModelName, reason: Annotated[str, typer.Option(help="Why (shown in the alert and the console)")] = (
        "paused by an admin"), by: By = "admin", detector: DetectorUrl = "http://127.0.0.1:8081",
          token: TokenOption = None) -> None:
    """Stop the model's automatic retraining until it is resumed; it pages (MitigaRetrainPaused)."""
    _say(_call("POST", f"{detector}/v1/models/{name}/retraining/pause", token, {"reason": reason, "by": by}))


@app.command()
def resume(name: ModelName, by: By = "admin", detector: DetectorUrl = "http://127.0.0.1:8081",
           token: TokenOption = None) -> None:
    """Let the model retrain on its own again; the circuit breaker's counts start afresh."""
    _say(_call("POST", f"{detector}/v1/models/{name}/retraining/resume", token, {"by": by}))
