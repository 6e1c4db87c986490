"""A retraining job with its adapters: read labelled data, retrain, announce the rollout, release the lock."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mitiga_core.errors import MitigaError
from mitiga_core.events import Topic, encode, new_id
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import read_progress, write_progress
from mitiga_retrainer.flow import RetrainOptions, RetrainResult, retrain
from mitiga_retrainer.rollout import RolloutFailed, helm_upgrade

if TYPE_CHECKING:
    from mitiga_core.bus import Bus
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_retrainer.settings import RetrainerSettings

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A retraining job that cannot run: bad options, no such model, too little data."""


def lock_key(model: str) -> str:
    """The detector's retrain lock for ``model`` (see ``mitiga_detector.trigger``)."""
    return f"mitiga:retrain:lock:{model}"


class _Progress:
    """Reports a run's progress twice: in the state store (for APIs and ``mitiga retrain``) and as a
    ``RetrainProgress`` event on the bus (for anything that listens)."""

    def __init__(self, settings: RetrainerSettings, state: StateStore, bus: Bus) -> None:
        self._settings = settings
        self._state = state
        self._bus = bus
        self._id = settings.request_id or f"{settings.model}-manual"

    def __call__(self, **fields: Any) -> None:
        write_progress(self._state, self._id, model=self._settings.model, **fields)
        current = read_progress(self._state, self._id) or {}
        event = pb.RetrainProgress(
            event_id=new_id(), request_id=self._id, model_name=self._settings.model,
            status=str(current.get("status", "running")), epoch=int(current.get("epoch", 0)),
            epochs=int(current.get("epochs", 0)), loss=float(current.get("loss", 0.0)),
            elapsed_seconds=float(current.get("elapsed_s", 0.0)), eta_seconds=float(current.get("eta_s", 0.0)),
            version=str(current.get("version") or ""), reason=str(current.get("reason", "")))
        event.time.GetCurrentTime()
        try:
            self._bus.publish(Topic.PROGRESS, encode(event, source=self._settings.service_name,
                                                     key=self._settings.model))
        except Exception:  # progress is informative: a bus hiccup must not fail the run
            log.warning("progress event not published", exc_info=True)


def run_job(settings: RetrainerSettings, *, store: ModelStore, state: StateStore, bus: Bus) -> RetrainResult:
    """Run one retraining; raises JobFailed with a clear message. The model's retrain lock is released at the end
    when this run holds it."""
    name = settings.model
    try:
        if not name:
            raise JobFailed("no model given (--model or MITIGA_MODEL)")
        base = settings.base_version or store.champion(name)
        if base is None:
            raise JobFailed(f"model {name!r} has no champion and no --base-version was given")
        production = LabelledLog(state).read(name, start=settings.data_start, end=settings.data_end)
        options = RetrainOptions(
            strategy=settings.strategy, mode=settings.mode, epochs=settings.epochs, holdout_rows=settings.holdout_rows,
            margin=settings.margin, metric=settings.metric, holdout_spread=settings.holdout_spread,
            holdout_blocks=settings.holdout_blocks, max_holdout_share=settings.max_holdout_share,
            window_rows=settings.window_rows if settings.window_days is None else None,
            window_days=settings.window_days, half_life=settings.half_life, min_rows=settings.min_rows,
            trigger=settings.trigger, episode_id=settings.episode_id, request_id=settings.request_id)

        def publish(rollout: pb.ModelRollout) -> None:
            if settings.rollout == "helm":  # the new version is live once Helm says so
                try:
                    helm_upgrade(settings, name, rollout.version)
                except RolloutFailed as exc:
                    store.set_champion(name, rollout.previous_version)  # Helm rolled back; so does the store
                    store.record_decision(name, {"rollout": "failed", "version": rollout.version,
                                                 "restored": rollout.previous_version, "reason": str(exc)[:500]})
                    raise
            bus.publish(Topic.ROLLOUT, encode(rollout, source=settings.service_name, key=name))
            bus.flush()

        log.info("retraining", extra={"model": name, "base_version": base, "strategy": settings.strategy,
                                      "mode": settings.mode, "labelled_rows": 0 if production is None
                                      else len(production.x)})
        announce = _Progress(settings, state, bus)
        announce(status="running", epoch=0, epochs=settings.epochs)

        def report(progress: dict[str, float]) -> None:
            announce(**progress)

        result = retrain(store, name, base, production, options, publish=publish, report=report)
        announce(status="promoted" if result.version else "refused", version=result.version or "",
                 reason=result.decision.reason)
        return result
    except RolloutFailed as exc:
        _Progress(settings, state, bus)(status="rollout_failed", reason=str(exc)[:1000])
        raise JobFailed(str(exc)) from exc
    except (ValueError, MitigaError, JobFailed) as exc:
        if name:
            _Progress(settings, state, bus)(status="failed", reason=str(exc))
        raise exc if isinstance(exc, JobFailed) else JobFailed(str(exc)) from exc
    finally:
        held = state.get(lock_key(name)) if name else None
        if held is not None and (not settings.request_id or held.decode() == settings.request_id):
            state.delete(lock_key(name))
