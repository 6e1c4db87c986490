"""``mitiga approvals``: the challenger waiting for a person, its evidence, and the decision."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mitiga_cli.models import ModelName, TokenOption, console
from mitiga_cli.retraining import By, DetectorUrl, _call

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Challengers waiting for approval (promotion_approval: required): show, approve, reject.")
Version = Annotated[str, typer.Argument(help="The waiting version")]


@app.command()
def show(name: ModelName, detector: DetectorUrl = "http://127.0.0.1:8081") -> None:
    """The waiting challenger with its evidence: the gate's numbers, its live trial's, and when it expires."""
    found = _call("GET", f"{detector}/v1/models/{name}/approval")
    waiting = found.get("waiting")
    if not waiting:
        console.print(f"{name}: nothing awaits approval")
        return
    console.print(f"{name}: version {waiting['version']} awaits approval against champion {waiting['champion']}",
                  soft_wrap=True)
    for part in ("gate", "trial"):
        if found.get(part):
            console.print(f"{part}: {json.dumps(found[part], default=str)}", soft_wrap=True)


def _decide(name: str, version: str, decision: str, by: str, reason: str, detector: str, token: str | None) -> None:
    done = _call("POST", f"{detector}/v1/models/{name}/approval", token,
                 {"version": version, "decision": decision, "by": by, "reason": reason})
    console.print(f"{name} version {version}: {done['outcome']}")


@app.command()
def approve(name: ModelName, version: Version, by: By = "admin",
            reason: Annotated[str, typer.Option(help="Why (in the decision log)")] = "",
            detector: DetectorUrl = "http://127.0.0.1:8081", token: TokenOption = None) -> None:
    """Approve the waiting version: a promotion Job rolls it out and makes it the champion."""
    _decide(name, version, "approve", by, reason, detector, token)


@app.command()
def reject(name: ModelName, version: Version, by: By = "admin",
           reason: Annotated[str, typer.Option(help="Why (in the decision log)")] = "",
           detector: DetectorUrl = "http://127.0.0.1:8081", token: TokenOption = None) -> None:
    """Reject the waiting version: the champion stays."""
    _decide(name, version, "reject", by, reason, detector, token)
