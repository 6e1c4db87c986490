"""The retraining trigger: at most one retrain in flight per model, a cooldown, idempotent requests.

The core calls :meth:`RetrainTrigger.fire` for every window whose confirmed level is critical. The first call of an
episode requests a retrain; repeated calls are absorbed by the lock (a retrain is running) and the cooldown. If the
episode is still critical once both have passed (the gate refused the challenger, or it did not help), the next
call makes the episode's next attempt, up to ``max_attempts``; after that, only when the model has got markedly
worse since the last attempt (its deciding signal ``rearm_factor`` times further past the critical level), so an
episode whose challengers were refused while the champion held up is not left without retraining for ever. Request
ids are deterministic per episode and attempt, so a redelivered window or a restarted detector never requests the
same attempt twice.

Keys in the StateStore::

    mitiga:retrain:lock:MODEL          held while a retrain runs (SET NX with a TTL); the retrainer deletes it
    mitiga:retrain:cooldown:MODEL      present for ``cooldown_s`` after a request
    mitiga:retrain:attempts:EPISODE    how many requests the episode has made
    mitiga:retrain:pressure:EPISODE    how far past its critical level the deciding signal was at the last request
    mitiga:retrain:labelled:EPISODE    the model's labelled rows at the last request
    mitiga:retrain:blind:MODEL         the data-time period of the last scheduled (blind) request
    mitiga:retrain:request:ID          a request id, once requested
    mitiga:retrain:backoff:MODEL       present while launches wait after a failed one (doubling, capped)
    mitiga:retrain:launch-failures:MODEL  consecutive failed launches

A launch that fails (the API server refuses the Job, or cannot be reached) undoes the request: the lock is released
(by its owner), the request id and the attempt are given back, no cooldown starts, and launches wait a backoff
(``launch_backoff_s``, doubling per consecutive failure up to ``launch_backoff_max_s``) before the next critical
window retries. The outcome ``launch_failed`` is counted and alerts (``MitigaRetrainLaunchFailed``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from mitiga_core import retrain_request
from mitiga_core.events import Topic, new_id
from mitiga_core.jobs import JobSpec
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.progress import lock_key
from mitiga_detector.breaker import RetrainBreaker

if TYPE_CHECKING:
    from datetime import datetime

    from mitiga_core.jobs import JobLauncher
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StateStore
    from mitiga_detector.settings import DetectorSettings

log = logging.getLogger(__name__)


def _dns_safe(model: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", model.lower()).strip("-")[:36] or "model"


def job_name(model: str, episode_id: str, attempt: int = 0) -> str:
    """A deterministic, DNS-safe job name per model, episode and attempt (at most 63 characters)."""
    name = f"retrain-{_dns_safe(model)}-{episode_id[:12]}"
    return f"{name}-{attempt}" if attempt else name


class RetrainTrigger:
    def __init__(self, settings: DetectorSettings, state: StateStore, launcher: JobLauncher | None,
                 publisher: EventPublisher) -> None:
        self._settings = settings
        self._state = state
        self._launcher = launcher
        self._publisher = publisher
        self.breaker = RetrainBreaker(settings, state)

    def job_finished(self, model: str, request_id: str, succeeded: bool) -> None:
        """A retraining job ended. A job that failed without reporting (killed, out of memory, past its deadline)
        would hold the model's lock until it expires: release it and announce the failure."""
        if succeeded or not model:
            return
        self.release(model, request_id)
        progress = pb.RetrainProgress(event_id=new_id(), request_id=request_id, model_name=model, status="failed",
                                      reason="the retraining job failed (see its pod's logs)")
        progress.time.GetCurrentTime()
        self._publisher.offer(Topic.PROGRESS, model, lambda: progress)

    def fire(self, model: str, version: str, episode_id: str, pressure: float = 0.0, labelled: int = 0,
             when: float | None = None) -> str:
        """Request a retrain for a critical episode; returns the outcome (a metric label). ``pressure``: how far
        past its critical level the deciding signal is (``levels.pressure``); ``labelled``: the labelled rows the
        model has had so far. A retry waits for ``retry_after_rows`` new labelled rows (a challenger trained on the
        data the gate just judged would be judged the same); an episode that has used its attempts makes another
        once the pressure is ``rearm_factor`` times what it was at the last one, or ``rearm_rows`` new labelled rows
        have come. ``when``: the window's data time (unix seconds), for the circuit breaker's count."""
        mode = self._settings.trigger
        if mode == "off":
            return "off"
        if mode == "alert_only":
            return "alert_only"
        if self.breaker.paused(model) is not None:
            return "paused"
        if self._state.get(f"mitiga:retrain:cooldown:{model}") is not None:
            return "cooldown"
        if self._state.get(f"mitiga:retrain:backoff:{model}") is not None:
            return "backoff"
        attempts_key = f"mitiga:retrain:attempts:{episode_id}"
        keep_s = max(self._settings.lock_ttl_s, 7 * 86400)
        attempt = int(self._state.get(attempts_key) or b"0")
        pressure_key = f"mitiga:retrain:pressure:{episode_id}"
        rows_key = f"mitiga:retrain:labelled:{episode_id}"
        new_rows = labelled - int(self._state.get(rows_key) or b"0")
        if attempt >= 1 and new_rows < self._settings.retry_after_rows:
            return "awaiting_data"
        if attempt >= self._settings.max_attempts:
            last = float(self._state.get(pressure_key) or b"0")
            worse = last > 0 and pressure >= last * self._settings.rearm_factor
            if not (worse or new_rows >= self._settings.rearm_rows):
                return "exhausted"
        request_id = job_name(model, episode_id, attempt)
        if self._state.get(f"mitiga:retrain:request:{request_id}") is not None:
            return "duplicate"
        if not self._state.set_if_absent(lock_key(model), request_id.encode(),
                                         ttl_s=self._settings.lock_ttl_s):
            return "locked"
        self._state.set(f"mitiga:retrain:request:{request_id}", b"1", ttl_s=keep_s)
        self._state.set(attempts_key, str(attempt + 1).encode(), ttl_s=keep_s)
        outcome = self._start(model, version, request_id, "informed", episode_id)
        if outcome == "launch_failed":
            self._state.set(attempts_key, str(attempt).encode(), ttl_s=keep_s)
            return outcome
        if outcome == "requested":
            self.breaker.requested(model, when if when is not None else time.time())
        if pressure > 0:
            self._state.set(pressure_key, str(pressure).encode(), ttl_s=keep_s)
        self._state.set(rows_key, str(labelled).encode(), ttl_s=keep_s)
        if self._settings.cooldown_s > 0:
            self._state.set(f"mitiga:retrain:cooldown:{model}", b"1", ttl_s=self._settings.cooldown_s)
        return outcome

    def _start(self, model: str, version: str, request_id: str, trigger: str, episode_id: str,
               options: dict[str, str] | None = None) -> str:
        """Launch with the lock held: ``requested``, ``duplicate`` (the Job exists) or ``launch_failed`` (undone)."""
        failures_key = f"mitiga:retrain:launch-failures:{model}"
        try:
            started = self._launch(model, version, request_id, trigger, episode_id, options)
        except Exception as exc:  # an API error, an invalid object: nothing was started
            failures = int(self._state.get(failures_key) or b"0") + 1
            wait = min(self._settings.launch_backoff_s * 2 ** (failures - 1), self._settings.launch_backoff_max_s)
            log.error("retrain launch failed", extra={"model": model, "request_id": request_id, "reason": str(exc),
                                                      "failures": failures, "retry_in_s": wait})
            self._state.set(failures_key, str(failures).encode(), ttl_s=max(wait * 4, 3600))
            if wait > 0:
                self._state.set(f"mitiga:retrain:backoff:{model}", b"1", ttl_s=wait)
            self._state.delete(f"mitiga:retrain:request:{request_id}")
            self.release(model, request_id)
            return "launch_failed"
        self._state.delete(failures_key)
        return "requested" if started else "duplicate"

    def release(self, model: str, request_id: str) -> bool:
        """Release the model's retrain lock if ``request_id`` holds it (only its owner may)."""
        return self._state.delete_if(lock_key(model), request_id.encode())

    def _launch(self, model: str, version: str, request_id: str, trigger: str, episode_id: str,
                options: dict[str, str] | None = None) -> bool:
        """Publish the RetrainRequest and start the job with it (``MITIGA_RETRAIN_REQUEST``); False when a job of that
        name already exists. ``options`` (strategy, mode, epochs, dates) override the settings."""
        options = dict(options or {})
        strategy = options.pop("strategy", self._settings.retrain_strategy)
        mode = options.pop("mode", self._settings.retrain_mode)
        request = pb.RetrainRequest(request_id=request_id, model_name=model, base_version=version,
                                    episode_id=episode_id, trigger=trigger, options=options, strategy=strategy,
                                    mode=mode)
        request.time.GetCurrentTime()
        self._publisher.offer(Topic.RETRAIN, model, lambda: request)
        log.info("retrain requested", extra={"model": model, "request_id": request_id, "trigger": trigger})
        if self._launcher is None:
            return True
        labels = {"mitiga.io/model": model, "mitiga.io/trigger": trigger}
        if episode_id:
            labels["mitiga.io/episode"] = episode_id[:12]
        spec = JobSpec(name=request_id, args=[self._settings.retrain_module],
                       env={retrain_request.ENV: retrain_request.to_argument(request)}, labels=labels)
        return self._launcher.launch(spec)

    def manual(self, model: str, version: str, options: dict[str, str]) -> tuple[str, str]:
        """An operator's request: no cooldown, but the lock holds. Returns (outcome, request id)."""
        request_id = job_name(model, "manual-" + uuid.uuid4().hex[:8])
        if not self._state.set_if_absent(lock_key(model), request_id.encode(),
                                         ttl_s=self._settings.lock_ttl_s):
            return "locked", ""
        outcome = self._start(model, version, request_id, "manual", "", options)
        return outcome, request_id if outcome != "launch_failed" else ""

    def promote(self, model: str, champion: str, version: str) -> str:
        """The promotion policy chose the candidate ``version``: a promotion Job (no training) makes it the champion.
        One request per version; it waits for the model's lock like any retrain (``locked``: asked again on the
        next labelled pair)."""
        request_id = f"promote-{_dns_safe(model)}-v{version}"
        if self._state.get(f"mitiga:retrain:request:{request_id}") is not None:
            return "duplicate"
        if not self._state.set_if_absent(lock_key(model), request_id.encode(), ttl_s=self._settings.lock_ttl_s):
            return "locked"
        self._state.set(f"mitiga:retrain:request:{request_id}", b"1", ttl_s=max(self._settings.lock_ttl_s, 7 * 86400))
        return self._start(model, champion, request_id, "promotion", "", {"promote_version": version})

    def scheduled(self, model: str, version: str, when: datetime) -> str | None:
        """Blind retraining on a data-time schedule (``blind_every``): once the windows' data time enters a new
        period, request a retrain. Returns the outcome, or None when nothing was due."""
        every = self._settings.blind_every
        if every == "none":
            return None
        period = {"month": f"{when:%Y-%m}", "quarter": f"{when.year}-q{(when.month - 1) // 3 + 1}",
                  "year": f"{when:%Y}"}[every]
        key = f"mitiga:retrain:blind:{model}"
        last = self._state.get(key)
        if last is None or last.decode() == period:
            if last is None:
                self._state.set(key, period.encode())
            return None
        if self.breaker.paused(model) is not None:
            return "paused"
        outcome = self.blind(model, version, period)
        if outcome == "requested":
            self.breaker.requested(model, when.timestamp())
        if outcome in ("requested", "duplicate"):
            self._state.set(key, period.encode())
        return outcome

    def blind(self, model: str, version: str, period: str) -> str:
        """A scheduled retrain for ``period`` (e.g. ``2004-07``): one per period, no cooldown, the lock holds."""
        request_id = f"retrain-{_dns_safe(model)}-blind-{period}"
        if self._state.get(f"mitiga:retrain:request:{request_id}") is not None:
            return "duplicate"
        if self._state.get(f"mitiga:retrain:backoff:{model}") is not None:
            return "backoff"
        if not self._state.set_if_absent(lock_key(model), request_id.encode(),
                                         ttl_s=self._settings.lock_ttl_s):
            return "locked"
        self._state.set(f"mitiga:retrain:request:{request_id}", b"1", ttl_s=max(self._settings.lock_ttl_s, 7 * 86400))
        return self._start(model, version, request_id, "blind", "")
