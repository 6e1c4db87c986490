"""The detector's HTTP routes: drift state and report, manual retraining, retrain progress."""

from __future__ import annotations

import math
from datetime import date  # noqa: TC003 - pydantic reads it at run time
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mitiga_core.errors import ModelNotFound
from mitiga_core.http import admin_guard
from mitiga_core.labelled import LabelledLog
from mitiga_core.progress import read_progress
from mitiga_core.store import existing_model_name as _named
from mitiga_detector import manual

if TYPE_CHECKING:
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_detector.core import DetectorCore
    from mitiga_detector.settings import DetectorSettings


class Dataset(BaseModel):
    """Labelled rows to add before retraining: inputs, ground truth and a date per row."""

    x: list[list[float]] = Field(min_length=1)
    y: list[list[float]] = Field(min_length=1)
    dates: list[date] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Dataset:
        if not len(self.x) == len(self.y) == len(self.dates):
            raise ValueError("x, y and dates need the same number of rows")
        if any(not math.isfinite(v) for row in self.x + self.y for v in row):
            raise ValueError("x and y must be finite numbers")
        return self


class RetrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["full_history", "sliding_window", "gradual_forgetting"] | None = None
    mode: Literal["warm_start", "reset"] | None = None
    epochs: int | None = Field(default=None, ge=1, le=1000)
    base_version: str | None = None
    data_start: date | None = None
    data_end: date | None = None
    dataset: Dataset | None = None


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="paused by an admin", min_length=1, max_length=500)
    by: str = Field(default="admin", min_length=1, max_length=100)
    """Who decided (recorded with the pause)."""


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(default="admin", min_length=1, max_length=100)


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=64)
    """The waiting version decided on (a decision on another is a 409)."""
    decision: Literal["approve", "reject"]
    by: str = Field(default="admin", min_length=1, max_length=100)
    reason: str = Field(default="", max_length=500)


def build_router(core: DetectorCore, settings: DetectorSettings, store: ModelStore, state: StateStore) -> APIRouter:
    router = APIRouter()
    admin = [Depends(admin_guard(settings.admin_token))]

    @router.get("/v1/models/{name}/drift")
    async def drift(name: str) -> dict[str, Any]:
        current = core.state_of(_named(name))
        if current["windows"] == 0 and name not in store.list_models():
            raise ModelNotFound(f"model {name!r} not found")
        return current

    @router.get("/v1/models/{name}/drift/history")
    async def history(name: str) -> dict[str, Any]:
        """The tested windows kept for the report (``MITIGA_HISTORY``), oldest first: level, types, signals,
        p-values and PSI per feature, errors, and the version each window judged."""
        name = _named(name)
        windows = core.view.windows(name)
        if not windows and name not in store.list_models():
            raise ModelNotFound(f"model {name!r} not found")
        return {"model": name, "windows": windows}

    @router.get("/v1/models/{name}/drift/report", response_class=HTMLResponse)
    def report(name: str) -> Response:  # plotting blocks: FastAPI runs it in its thread pool
        from mitiga_detector.reports import render

        try:
            return HTMLResponse(render(core, _named(name)))
        except KeyError:
            return JSONResponse({"error": f"model {name!r} has no tested window yet"}, status_code=404)

    @router.post("/v1/models/{name}/retrain", dependencies=admin, status_code=202)
    def retrain(name: str, body: RetrainBody) -> dict[str, str]:
        """Manual retraining: optional strategy, mode, epochs, date range and extra labelled rows. Synchronous (the
        store, the state and the launcher block), so FastAPI runs it off the event loop: probes keep answering."""
        name = _named(name)
        version = manual.base_version(store, name, body.base_version)
        if body.dataset is not None:
            log = LabelledLog(state, settings.labelled_max_requests, settings.labelled_max_bytes)
            manual.add_rows(store, log, name, version, body.dataset.x, body.dataset.y, body.dataset.dates)
        options = {k: str(v) for k, v in body.model_dump(exclude={"dataset", "base_version"}).items()
                   if v is not None}
        request_id = manual.request(core, name, version, options)
        return {"request_id": request_id, "model": name, "base_version": version}

    @router.get("/v1/alerts")
    async def alerts() -> dict[str, Any]:
        """The model alerts firing now, from the detector's own verdicts, in Alertmanager's shape: what a deployment
        without Alertmanager shows (the console's Alerts page)."""
        return {"alerts": core.alerting.active()}

    def _known(name: str) -> str:
        name = _named(name)
        if name not in store.list_models():
            raise ModelNotFound(f"model {name!r} not found")
        return name

    @router.get("/v1/models/{name}/retraining")
    def retraining(name: str) -> dict[str, Any]:
        """Whether the model's automatic retraining runs or is paused (why, since when, by whom), with the circuit
        breaker's counts and limits."""
        return core.breaker.status(_known(name))

    @router.post("/v1/models/{name}/retraining/pause", dependencies=admin)
    def pause(name: str, body: PauseBody | None = None) -> dict[str, Any]:
        """Stop the model's automatic retraining until it is resumed (manual retraining stays possible)."""
        body = body or PauseBody()
        name = _known(name)
        core.alerting.set_paused(name, core.breaker.pause(name, body.reason, body.by))
        return core.breaker.status(name)

    @router.post("/v1/models/{name}/retraining/resume", dependencies=admin)
    def resume(name: str, body: ResumeBody | None = None) -> dict[str, Any]:
        """Let the model retrain on its own again: the breaker closes, its counts start afresh."""
        name = _known(name)
        core.breaker.resume(name, (body or ResumeBody()).by)
        core.alerting.set_paused(name, None)
        return core.breaker.status(name)

    @router.get("/v1/models/{name}/approval")
    def approval(name: str) -> dict[str, Any]:
        """The challenger waiting for approval, with the evidence: its gate decision, its live trial's, and when it
        expires (``waiting`` null when none waits)."""
        return core.approvals.evidence(_known(name))

    @router.post("/v1/models/{name}/approval", dependencies=admin)
    def decide(name: str, body: ApprovalBody) -> dict[str, Any]:
        """Approve (a promotion Job makes it the champion) or reject the waiting challenger; recorded with who."""
        name = _known(name)
        outcome = core.approvals.decide(name, body.version, body.decision == "approve", body.by, body.reason)
        return {"model": name, "version": body.version, "outcome": outcome}

    @router.get("/v1/retrains/{request_id}")
    async def progress(request_id: str) -> dict[str, Any]:
        found = read_progress(state, request_id)
        if found is None:
            raise ModelNotFound(f"no retrain {request_id!r} has reported progress")
        return found

    return router
