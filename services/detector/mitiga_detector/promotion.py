"""The promotion policy: a candidate on live trial (shadow or canary) against the champion, on the same requests.

Both versions predict every live request during a trial (``mitiga_core.promotion``). The candidate's predictions
wait in the state store beside the champion's; when a request's ground truth joins the champion's prediction, the
candidate's is taken too and the pair of per-request errors kept. At ``promotion_min_labelled`` pairs the trial is
decided once: a one-sided Wilcoxon signed-rank test (scipy) that the candidate's error is lower, at
``promotion_confidence``, and a mean error at least ``promotion_margin`` lower. Promoted: a promotion Job makes it
the champion (the retrainer rolls it out, as after the offline gate). Discarded: the trial ends and every replica
unloads it. Both outcomes go to the decision log with their numbers and to the metrics.

Keys in the StateStore::

    mitiga:trial:pred:MODEL:REQUEST     the candidate's prediction, until its ground truth (TTL feedback_ttl_s)
    mitiga:trial:truth:MODEL:REQUEST    ground truth (and the champion's error) that came before the candidate's
                                        prediction, waiting for it (TTL feedback_wait_s)
    mitiga:trial:pairs:MODEL:VERSION    the paired errors so far (JSON), staged with the consumer's checkpoint
    mitiga:trial:decided:MODEL:VERSION  the outcome, once decided
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from mitiga_core.bundle import read_manifest
from mitiga_core.events import Topic
from mitiga_core.labelled import decode_record, encode_record
from mitiga_core.promotion import APPROVAL, Candidate, approval_required, end_trial, start_trial

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StagedWrites, StateStore
    from mitiga_core.store import ModelStore
    from mitiga_core.types import AnyArray, FloatArray
    from mitiga_detector.metrics import DetectorMetrics
    from mitiga_detector.performance import Prediction
    from mitiga_detector.settings import DetectorSettings
    from mitiga_detector.trigger import RetrainTrigger

log = logging.getLogger(__name__)

CANDIDATE_TTL_S = 1.0
"""How long the candidate read from the model store is reused (it changes once per trial)."""


def paired_test(champion: AnyArray, candidate: AnyArray) -> float:
    """p-value of "the candidate's per-request error is lower" (one-sided Wilcoxon signed-rank on the pairs)."""
    if np.allclose(champion, candidate):
        return 1.0
    return float(stats.wilcoxon(champion, candidate, alternative="greater", zero_method="zsplit").pvalue)


class PromotionJudge:
    def __init__(self, settings: DetectorSettings, *, store: ModelStore, state: StateStore,
                 publisher: EventPublisher, metrics: DetectorMetrics, trigger: RetrainTrigger) -> None:
        self._settings = settings
        self._store = store
        self._state = state
        self._publisher = publisher
        self._metrics = metrics
        self._trigger = trigger
        self._candidates: dict[str, tuple[float, Candidate | None]] = {}
        self._manifests: dict[tuple[str, str], ModelManifest] = {}

    def candidate(self, model: str) -> Candidate | None:
        now = time.monotonic()
        seen = self._candidates.get(model)
        if seen is None or now - seen[0] > CANDIDATE_TTL_S:
            found = Candidate.of(self._store.candidate(model))
            seen = (now, found if found is not None and found.live else None)  # one awaiting approval is not on trial
            self._candidates[model] = seen
        return seen[1]

    def on_trial(self, model: str, version: str) -> bool:
        """Whether an event of this version is the candidate's (kept for pairing, not monitored as the model)."""
        candidate = self.candidate(model)
        return candidate is not None and candidate.version == version

    def remember(self, predictions: list[Prediction], staged: StagedWrites) -> None:
        """Keep the candidate's predictions until their ground truth joins the champion's; one whose ground truth
        came first (it waits as ``mitiga:trial:truth``) is paired at once."""
        items = {}
        for p in predictions:
            waiting = staged.get(self._truth_key(p.model, p.request_id), self._state)
            candidate = self.candidate(p.model)
            if waiting is None or candidate is None:
                items[self._pred_key(p.model, p.request_id)] = encode_record(
                    np.zeros((len(p.outputs), 0), np.float32), p.outputs, p.when, v=p.version)
                continue
            staged.delete(self._truth_key(p.model, p.request_id))
            held = json.loads(waiting)
            error = self._error(p.model, candidate.champion, p.outputs, np.asarray(held["truth"], np.float32))
            if error is not None:
                self._add_pair(p.model, candidate, float(held["champion"]), error, staged)
        if items:
            self._state.set_many_if_absent(items, ttl_s=self._settings.feedback_ttl_s)

    def pair(self, model: str, request_id: str, champion_version: str, champion_outputs: FloatArray,
             truth: FloatArray, staged: StagedWrites) -> None:
        """Ground truth joined the champion's prediction: pair it with the candidate's (or wait for it), and decide
        at the count."""
        candidate = self.candidate(model)
        if candidate is None or candidate.champion != champion_version:
            return
        champion_error = self._error(model, champion_version, champion_outputs, truth)
        if champion_error is None:
            return
        raw = staged.get(self._pred_key(model, request_id), self._state)
        if raw is None:  # not arrived yet (it is made after the answer): the pair waits for it
            self._metrics.trial_unpaired.labels(model).inc()
            staged.set(self._truth_key(model, request_id), json.dumps(
                {"champion": champion_error, "truth": truth.reshape(-1).tolist()}).encode(),
                ttl_s=max(self._settings.feedback_wait_s, 60.0))
            return
        staged.delete(self._pred_key(model, request_id))
        record = decode_record(raw)
        error = self._error(model, champion_version, record.y, truth)
        if record.meta.get("v") != candidate.version or error is None:
            return
        self._add_pair(model, candidate, champion_error, error, staged)

    def _add_pair(self, model: str, candidate: Candidate, champion_error: float, candidate_error: float,
                  staged: StagedWrites) -> None:
        decided = self._state.get(self._decided_key(model, candidate.version))
        if decided is not None:
            if decided == b"promoted":  # the launch may have waited for the retrain lock: again (idempotent)
                self._trigger.promote(model, candidate.champion, candidate.version)
            return
        pairs_key = f"mitiga:trial:pairs:{model}:{candidate.version}"
        held = staged.get(pairs_key, self._state)
        pairs: list[list[float]] = json.loads(held) if held else []
        pairs.append([champion_error, candidate_error])
        staged.set(pairs_key, json.dumps(pairs).encode(), ttl_s=self._settings.feedback_ttl_s)
        errors = np.asarray(pairs, np.float64)
        labels = (model, candidate.version)
        self._metrics.trial_labelled.labels(*labels).set(len(pairs))
        self._metrics.trial_error.labels(*labels, "champion").set(float(errors[:, 0].mean()))
        self._metrics.trial_error.labels(*labels, "candidate").set(float(errors[:, 1].mean()))
        if len(pairs) >= self._settings.promotion_min_labelled:
            self._decide(model, candidate, errors)

    @staticmethod
    def _pred_key(model: str, request_id: str) -> str:
        return f"mitiga:trial:pred:{model}:{request_id}"

    @staticmethod
    def _truth_key(model: str, request_id: str) -> str:
        return f"mitiga:trial:truth:{model}:{request_id}"

    def _error(self, model: str, version: str, predicted: FloatArray, truth: FloatArray) -> float | None:
        """One request's error as the model's task measures it (``promotion_metric`` for a regression, the log loss
        for a classifier); None when the truth does not fit the prediction."""
        manifest = self._manifest(model, version)
        width = manifest.kind.truth_width(manifest)
        if truth.size != len(predicted) * width:
            return None
        return manifest.kind.request_loss(manifest, truth.reshape(len(predicted), width), predicted,
                                          squared=self._settings.promotion_metric == "mse")

    def _manifest(self, model: str, version: str) -> ModelManifest:
        key = (model, version)
        if key not in self._manifests:
            self._manifests[key] = read_manifest(self._store.path(model, version))
        return self._manifests[key]

    @staticmethod
    def _decided_key(model: str, version: str) -> str:
        return f"mitiga:trial:decided:{model}:{version}"

    def _decide(self, model: str, candidate: Candidate, errors: AnyArray) -> None:
        s = self._settings
        champion_error, candidate_error = float(errors[:, 0].mean()), float(errors[:, 1].mean())
        p_value = paired_test(errors[:, 0], errors[:, 1])
        better = candidate_error < champion_error * (1 - s.promotion_margin)
        promote = p_value < 1 - s.promotion_confidence and better
        reason = (f"{s.promotion_metric} {candidate_error:.4g} vs champion {champion_error:.4g} on "
                  f"{len(errors)} labelled requests, p = {p_value:.3g} (needs < {1 - s.promotion_confidence:.3g})"
                  + ("" if better or not s.promotion_margin else f", not {s.promotion_margin:.0%} lower"))
        self._conclude(model, candidate, "promoted" if promote else "discarded", {
            "champion": champion_error, "challenger": candidate_error, "labelled": len(errors), "p_value": p_value,
            "test": "wilcoxon signed-rank, one-sided, paired per request", "reason": reason})

    def expire(self, model: str, staged: StagedWrites, now: datetime | None = None) -> None:
        """End a trial that has not had ``promotion_min_labelled`` labelled requests within
        ``promotion_max_hours`` (not enough ground truth came back to judge it): the candidate is discarded and
        retraining resumes."""
        candidate = self.candidate(model)
        if candidate is None or not candidate.since:
            return
        hours = ((now or datetime.now(UTC)) - datetime.fromisoformat(candidate.since)).total_seconds() / 3600
        if hours < self._settings.promotion_max_hours:
            return
        held = staged.get(f"mitiga:trial:pairs:{model}:{candidate.version}", self._state)
        pairs = json.loads(held) if held else []
        self._conclude(model, candidate, "expired", {
            "labelled": len(pairs), "reason": f"only {len(pairs)} of {self._settings.promotion_min_labelled} "
                                              f"labelled requests in {hours:.0f} h (MITIGA_PROMOTION_MAX_HOURS)"})

    def _conclude(self, model: str, candidate: Candidate, outcome: str, numbers: dict[str, object]) -> None:
        """Record the trial's outcome once (across replicas and redeliveries), then promote or end it."""
        s = self._settings
        if not self._state.set_if_absent(self._decided_key(model, candidate.version), outcome.encode(),
                                         ttl_s=max(s.feedback_ttl_s, 7 * 86400)):
            return  # another replica (or this one before a redelivery) decided it
        promote = outcome == "promoted"
        record: dict[str, object] = {
            "time": datetime.now(UTC).isoformat(), "stage": candidate.mode, "trial": True, "promote": promote,
            "outcome": outcome, "version": candidate.version, "base_version": candidate.champion,
            "metric": s.promotion_metric, "confidence": s.promotion_confidence, "margin": s.promotion_margin,
            **numbers, "trial_since": candidate.since, "request_id": candidate.request_id,
        }
        self._store.record_decision(model, record)
        self._metrics.promotions.labels(model, candidate.mode, outcome).inc()
        if "p_value" in numbers:
            self._metrics.trial_p_value.labels(model, candidate.version).set(float(str(numbers["p_value"])))
        log.info("live trial decided", extra={"model": model, **record})
        if promote and approval_required(s.promotion_approval, s.promotion_approval_models, model):
            waiting = start_trial(self._store, model, Candidate(version=candidate.version, mode=APPROVAL,
                                                                champion=candidate.champion,
                                                                request_id=candidate.request_id))
            self._candidates.pop(model, None)
            self._publisher.offer(Topic.ROLLOUT, model, lambda: waiting)
            log.info("trial won: awaits approval", extra={"model": model, "version": candidate.version})
            return
        if promote:
            launched = self._trigger.promote(model, candidate.champion, candidate.version)
            self._metrics.triggers.labels(model, f"promotion_{launched}").inc()
            return
        event = end_trial(self._store, model, candidate.version, reason=f"{outcome}: {record['reason']}")
        self._candidates.pop(model, None)
        if event is not None:
            self._publisher.offer(Topic.ROLLOUT, model, lambda: event)
