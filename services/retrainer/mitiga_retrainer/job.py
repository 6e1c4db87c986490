"""A retraining job with its adapters: read labelled data, retrain, announce the rollout, release the lock."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from mitiga_core.errors import MitigaError, Unavailable
from mitiga_core.events import Topic, encode, new_id
from mitiga_core.labelled import LabelledLog
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import RetrainStatus, lock_key, read_progress, write_progress
from mitiga_core.promotion import approval_required
from mitiga_retrainer.flow import RetrainOptions, RetrainResult, retrain
from mitiga_retrainer.rollout import RolloutFailed, helm_upgrade
from mitiga_retrainer.trial import promote_candidate

if TYPE_CHECKING:
    from mitiga_core.bus import Bus
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_retrainer.settings import RetrainerSettings

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A retraining job that cannot run: bad options, no such model, too little data."""


class Locked(Exception):
    """Another run holds the model's retrain lock: this one has nothing to do."""


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
            status=str(current.get("status", RetrainStatus.RUNNING)), epoch=int(current.get("epoch", 0)),
            epochs=int(current.get("epochs", 0)), loss=float(current.get("loss", 0.0)),
            elapsed_seconds=float(current.get("elapsed_s", 0.0)), eta_seconds=float(current.get("eta_s", 0.0)),
            version=str(current.get("version") or ""), reason=str(current.get("reason", "")))
        event.time.GetCurrentTime()
        try:
            self._bus.publish(Topic.PROGRESS, encode(event, source=self._settings.service_name,
                                                     key=self._settings.model))
        except Exception:  # progress is informative: a bus hiccup must not fail the run
            log.warning("progress event not published", exc_info=True)


def take_lock(settings: RetrainerSettings, state: StateStore) -> str:
    """The owner token under which this run holds the model's retrain lock. A run the detector launched finds the
    lock held under its request id; any other (a CronJob's, a manual one) takes it, or raises Locked when another
    run holds it."""
    owner = settings.request_id or f"{settings.trigger}-{uuid.uuid4().hex[:12]}"
    key = lock_key(settings.model)
    if state.get(key) == owner.encode() or state.set_if_absent(key, owner.encode(), ttl_s=settings.lock_ttl_s):
        return owner
    held = state.get(key)
    raise Locked(f"a retrain of {settings.model!r} is running ({(held or b'?').decode()}); nothing to do")


def release_lock(state: StateStore, model: str, owner: str) -> bool:
    """Release the model's retrain lock if ``owner`` still holds it, in one step: when it expired during the run,
    another run may hold it by now."""
    return state.delete_if(lock_key(model), owner.encode())


def run_job(settings: RetrainerSettings, *, store: ModelStore, state: StateStore, bus: Bus) -> RetrainResult:
    """Run one retraining; raises JobFailed with a clear message, Locked when another run holds the model's lock,
    Unavailable when the state store cannot be reached (a transient failure: the Job retries). The lock is
    released at the end by its owner only."""
    name = settings.model
    if not name:
        raise JobFailed("no model given (--model or MITIGA_MODEL)")
    owner = take_lock(settings, state)
    try:
        base = settings.base_version or store.champion(name)
        if base is None:
            raise JobFailed(f"model {name!r} has no champion and no --base-version was given")

        def go_live(version: str) -> None:
            if settings.rollout != "helm":
                return
            try:  # the new version is live once Helm says so; only then does the champion change
                helm_upgrade(settings, name, version)
            except RolloutFailed as exc:
                store.record_decision(name, {"rollout": "failed", "version": version, "reason": str(exc)[:500]})
                raise

        def publish(rollout: pb.ModelRollout) -> None:
            bus.publish(Topic.ROLLOUT, encode(rollout, source=settings.service_name, key=name))
            bus.flush()

        if settings.promote_version:
            announce = _Progress(settings, state, bus)
            version = promote_candidate(store, name, settings.promote_version, request_id=settings.request_id,
                                        go_live=go_live, publish=publish)
            announce(status=RetrainStatus.PROMOTED, version=version, reason="promoted after its live trial")
            return RetrainResult(None, version)
        production = LabelledLog(state).read(name, start=settings.data_start, end=settings.data_end)
        options = RetrainOptions(
            strategy=settings.strategy, mode=settings.mode, epochs=settings.epochs, holdout_rows=settings.holdout_rows,
            margin=settings.margin, metric=settings.metric, holdout_spread=settings.holdout_spread,
            holdout_blocks=settings.holdout_blocks, max_holdout_share=settings.max_holdout_share,
            max_source_share=settings.max_source_share,
            window_rows=settings.window_rows if settings.window_days is None else None,
            window_days=settings.window_days, half_life=settings.half_life, min_rows=settings.min_rows,
            trigger=settings.trigger, episode_id=settings.episode_id, request_id=settings.request_id,
            promotion_mode=settings.promotion_mode, canary_percent=settings.promotion_canary_percent,
            approval=approval_required(settings.promotion_approval, settings.promotion_approval_models, name))

        log.info("retraining", extra={"model": name, "base_version": base, "strategy": settings.strategy,
                                      "mode": settings.mode, "labelled_rows": 0 if production is None
                                      else len(production.x)})
        announce = _Progress(settings, state, bus)
        announce(status=RetrainStatus.RUNNING, epoch=0, epochs=settings.epochs)

        def report(progress: dict[str, float]) -> None:
            announce(**progress)

        result = retrain(store, name, base, production, options, publish=publish, report=report, go_live=go_live)
        outcome = (RetrainStatus.CANDIDATE if result.stage else RetrainStatus.PROMOTED) if result.version \
            else RetrainStatus.REFUSED
        announce(status=outcome, version=result.version or "",
                 reason=result.decision.reason if result.decision else "")
        return result
    except RolloutFailed as exc:
        _Progress(settings, state, bus)(status=RetrainStatus.ROLLOUT_FAILED, reason=str(exc)[:1000])
        raise JobFailed(str(exc)) from exc
    except Unavailable:
        raise
    except (ValueError, MitigaError, JobFailed) as exc:
        _Progress(settings, state, bus)(status=RetrainStatus.FAILED, reason=str(exc))
        raise exc if isinstance(exc, JobFailed) else JobFailed(str(exc)) from exc
    finally:
        release_lock(state, name, owner)
