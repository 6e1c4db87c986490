"""One retraining run: data → strategy → challenger → gate → registration → rollout event.

Nothing is registered unless the gate promotes the challenger, and then atomically (the model store writes a
version in one rename). The decision is recorded in the registry either way. With ``promotion_mode`` shadow or
canary, a challenger that passed the gate goes on live trial instead of becoming the champion
(``mitiga_core.promotion``); the detector's promotion policy decides later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.bundle import (
    Lineage,
    TrainingData,
    TrainingInfo,
    ValidationData,
    load_keras,
    read_manifest,
    read_training,
    save_bundle,
)
from mitiga_core.bundle.io import MODEL_FILE
from mitiga_core.champion import promote
from mitiga_core.promotion import APPROVAL, Candidate, PromotionMode, start_trial
from mitiga_retrainer.challenger import Mode, predict, train_challenger
from mitiga_retrainer.gate import GateDecision, Metric, decide
from mitiga_retrainer.holdout import concentration, split_holdout
from mitiga_retrainer.strategies import Strategy, build_training_set, combine

if TYPE_CHECKING:
    from collections.abc import Callable

    from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
    from mitiga_core.store import ModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOptions:
    strategy: Strategy = "sliding_window"
    mode: Mode = "warm_start"
    epochs: int = 5
    holdout_rows: int = 60
    """Labelled rows kept for the gate and never trained on, drawn across the recent period (``holdout.py``)."""
    holdout_spread: float = 3.0
    """The recent period the holdout is drawn from, in multiples of ``holdout_rows`` (1 = the newest rows only)."""
    holdout_blocks: int = 4
    """Contiguous blocks the holdout is made of, spread evenly over the recent period."""
    max_holdout_share: float = 0.5
    """The gate refuses when one source request, or one data time, gives more than this share of the holdout."""
    max_source_share: float = 0.5
    """A label source that gave more than this share of the holdout's production rows, beside other sources, must
    not decide alone: the challenger must also win without its rows."""
    margin: float = 0.0
    """Relative improvement the challenger needs over the champion (0.05 = 5% lower error)."""
    metric: Metric | None = None
    """The gate's metric; None is the task's default (MAE for regressions, log loss for classifiers)."""
    window_rows: int | None = 500
    window_days: int | None = None
    half_life: float | None = None
    min_rows: int = 50
    trigger: str = "manual"
    episode_id: str = ""
    request_id: str = ""
    seed: int = 0
    promotion_mode: PromotionMode = "offline"
    canary_percent: float = 10.0
    approval: bool = False
    """A challenger that won the gate waits for a person (``promotion_approval``); after its live trial, when one
    runs (the detector then asks)."""


@dataclass(frozen=True)
class RetrainResult:
    decision: GateDecision | None
    """The gate's decision (None for a promotion after a live trial, which the detector decided)."""
    version: str | None
    """The registered version when promoted (or put on trial)."""
    stage: str = ""
    """``shadow`` or ``canary`` when the version went on live trial instead of becoming the champion."""


def retrain(
    store: ModelStore,
    name: str,
    base_version: str,
    production: TrainingData | None,
    options: RetrainOptions,
    *,
    publish: Callable[[pb.ModelRollout], None] | None = None,
    report: Callable[[dict[str, float]], None] | None = None,
    go_live: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Raises ValueError (bad options, too little data) or a MitigaError (missing model) before writing anything.

    A promoted version is registered, then made live by ``go_live`` (Helm; it raises when the rollout fails), and
    only then becomes the champion and is announced by ``publish``: the store never names a champion that is not
    being served."""
    folder = store.path(name, base_version)
    manifest = read_manifest(folder)
    original = read_training(folder)
    if original is None:
        raise ValueError(f"{name} version {base_version} keeps no training data to retrain from")
    data = combine(original, production)
    task = manifest.kind
    if options.metric is not None and options.metric not in task.gate_metrics:
        raise ValueError(f"gate metric {options.metric!r} does not apply to a {task.name} model; use one of "
                         f"{sorted(task.gate_metrics)}")
    train_part, holdout = split_holdout(data, options.holdout_rows, spread=options.holdout_spread,
                                        blocks=options.holdout_blocks, task=task)
    train_set = build_training_set(train_part, options.strategy, window_rows=options.window_rows,
                                   window_days=options.window_days, half_life=options.half_life,
                                   min_rows=options.min_rows)
    champion_pred = predict(load_keras(folder / MODEL_FILE), manifest, holdout.x)
    challenger, in_scaler, out_scaler = train_challenger(
        load_keras(folder / MODEL_FILE), manifest, train_set, mode=options.mode, epochs=options.epochs,
        seed=options.seed, report=report)
    challenger_pred = predict(challenger, manifest, holdout.x, in_scaler, out_scaler)
    decision = decide(holdout.y, champion_pred, challenger_pred, metric=options.metric, margin=options.margin,
                      concentration=concentration(holdout), max_share=options.max_holdout_share,
                      origins=holdout.origins, max_source_share=options.max_source_share, task=task)
    record: dict[str, object] = {
        **decision.as_dict(), "time": datetime.now(UTC).isoformat(), "base_version": base_version,
        "request_id": options.request_id, "episode_id": options.episode_id, "trigger": options.trigger,
        "strategy": options.strategy, "mode": options.mode, "train_start": train_set.start, "train_end": train_set.end,
        "train_rows": len(train_set), "holdout_start": str(holdout.dates[0]), "holdout_end": str(holdout.dates[-1]),
    }
    log.info("gate decision", extra={"model": name, **record})
    if not decision.promote:
        store.record_decision(name, {**record, "version": None})
        return RetrainResult(decision, None)

    train_pred = predict(challenger, manifest, train_set.x, in_scaler, out_scaler)
    metrics = {f"train_{k}": v for k, v in task.scores(train_set.y, train_pred).items()}
    metrics |= {f"holdout_{k}": v for k, v in task.scores(holdout.y, challenger_pred).items()}
    new = manifest.model_copy(update={
        "version": "0", "input_scaler": in_scaler, "output_scaler": out_scaler,
        "training": TrainingInfo(architecture=manifest.training.architecture, data_start=train_set.start,
                                 data_end=train_set.end, rows=len(train_set), epochs=options.epochs, metrics=metrics),
        "lineage": Lineage(parent=base_version, trigger=options.trigger, episode_id=options.episode_id or None,
                           strategy=options.strategy, mode=options.mode),
        "created_at": datetime.now(UTC).isoformat(),
    })
    reference = task.drift_columns(train_set.x)
    validation = ValidationData(x=holdout.x, pred=challenger_pred, y=holdout.y)  # never trained on
    saved = save_bundle(store, new, challenger, np.asarray(reference, np.float32), data, validation)
    stage = {} if options.promotion_mode == "offline" else {"stage": options.promotion_mode}
    waits = options.approval and options.promotion_mode == "offline"
    store.record_decision(name, {**record, "version": saved.version, **stage, **({"awaiting_approval": True}
                                                                                 if waits else {})})
    if waits:
        event = start_trial(store, name, Candidate(version=saved.version, mode=APPROVAL,
                                                   champion=store.champion(name) or base_version,
                                                   request_id=options.request_id))
        if publish is not None:
            publish(event)
        log.info("challenger awaits approval", extra={"model": name, "version": saved.version})
        return RetrainResult(decision, saved.version, APPROVAL)
    if options.promotion_mode != "offline":
        event = start_trial(store, name, Candidate(
            version=saved.version, mode=options.promotion_mode, champion=store.champion(name) or base_version,
            canary_percent=options.canary_percent if options.promotion_mode == "canary" else 0.0,
            request_id=options.request_id))
        if publish is not None:
            publish(event)
        log.info("challenger on live trial", extra={"model": name, "version": saved.version,
                                                    "stage": options.promotion_mode})
        return RetrainResult(decision, saved.version, options.promotion_mode)
    if go_live is not None:
        go_live(saved.version)
    rollout = promote(store, name, saved.version, reason=f"retrain ({options.trigger})",
                      request_id=options.request_id, previous=base_version)
    if publish is not None:
        publish(rollout)
    log.info("challenger promoted", extra={"model": name, "version": saved.version, "parent": base_version})
    return RetrainResult(decision, saved.version)
