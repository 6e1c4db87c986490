"""A manual retrain, as the detector's API asks for it: the base version checked, the extra labelled rows checked
against the model's shapes and added to its labelled log, then the request through the same trigger as an
automatic one (its lock, its id, its launcher). Transport-free: the REST route only parses the body."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mitiga_core.bundle import read_manifest
from mitiga_core.errors import InvalidInput, ModelNotFound, ModelNotReady, Unavailable

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import date

    from mitiga_core.labelled import LabelledLog
    from mitiga_core.store import ModelStore
    from mitiga_detector.core import DetectorCore


def base_version(store: ModelStore, name: str, version: str | None) -> str:
    """The version to retrain from: the one asked for, else the champion; it must exist."""
    version = version or store.champion(name)
    if version is None or version not in store.list_versions(name):
        raise ModelNotFound(f"model {name!r} has no version {version or '(champion)'}")
    return version


def add_rows(store: ModelStore, log: LabelledLog, name: str, version: str, x: Sequence[Sequence[float]],
             y: Sequence[Sequence[float]], dates: Sequence[date]) -> None:
    """Labelled rows the caller brings, a day's rows per labelled entry; refused whole (400, naming the field) when
    their shapes do not fit the model."""
    manifest = read_manifest(store.path(name, version))  # the shapes only: no detector is built for this
    inputs, truth = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if inputs.ndim != 2 or inputs.shape[1] != manifest.input_width:
        raise InvalidInput(f"dataset.x: rows must have {manifest.input_width} values for model {name!r}")
    width = manifest.kind.truth_width(manifest)
    if truth.ndim != 2 or truth.shape[1] != width:
        raise InvalidInput(f"dataset.y: rows must have {width} values (a value per output, or a class index)")
    days = np.asarray([d.isoformat() for d in dates])
    for day in sorted(set(days)):
        log.append(name, inputs[days == day], truth[days == day], day)


def request(core: DetectorCore, name: str, version: str, options: Mapping[str, str]) -> str:
    """Ask for the retrain; its request id. A retrain already running is 503 (try later), so is a launch the
    cluster refused."""
    outcome, request_id = core.manual_retrain(name, version, dict(options))
    if outcome == "launch_failed":
        raise Unavailable(f"the retraining job for {name!r} could not be started; see the detector's log and try "
                          "again")
    if outcome == "locked":
        raise ModelNotReady(f"a retrain of {name!r} is already running; try again when it ends")
    return request_id
