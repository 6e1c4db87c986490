"""What an uploaded Keras model is: its task (declared, or read from its last layer), its inputs and its outputs,
checked against a manifest before anything is registered. A model whose outputs mitiga does not understand is
refused here with the reason, never served as something else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mitiga_core.bundle.manifest import Lineage, ModelInput, ModelManifest, Scaler
from mitiga_core.errors import BundleError
from mitiga_core.tasks import TASKS, Classification

if TYPE_CHECKING:
    import keras


def _dims(shape: Any, what: str) -> list[int]:
    if isinstance(shape, list):
        raise BundleError(f"models with several {what}s are not supported")
    dims: list[int | None] = list(tuple(shape)[1:])
    if any(d is None for d in dims):
        raise BundleError(f"model {what} shape {tuple(shape)} has an undefined dimension besides the batch")
    return [int(d) for d in dims if d is not None]


def model_inputs(model: keras.Model) -> list[ModelInput]:
    """The named inputs of a model with several (empty for one input), each with its shape per row."""
    if not isinstance(model.input_shape, list) or len(model.inputs) < 2:
        return []
    return [ModelInput(name=str(t.name), shape=_dims(t.shape, f"input {str(t.name)!r}")) for t in model.inputs]


def last_activation(model: keras.Model) -> str:
    """The name of the activation the model's output goes through last (``softmax``, ``sigmoid``, ``linear``...)."""
    import keras

    layer = model.layers[-1] if model.layers else None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return str(getattr(activation, "__name__", activation or "linear"))


def _classes(model: keras.Model, task: Classification) -> int:
    """The classes a classifier's last layer gives; BundleError when it does not give the task's probabilities."""
    units, activation = _dims(model.output_shape, "output"), last_activation(model)
    k = task.classes_of(activation, units)
    if k is None:
        raise BundleError(f"task {task.name!r}: the model must end in {task.last_layer} (its probabilities); this "
                          f"one ends in {activation} with output shape {units}")
    return k


def infer_task(model: keras.Model, window_like: bool) -> str:
    """The task read from the model: softmax → multiclass, one sigmoid unit → binary, else a forecast when the input
    is a ``(window, 1)`` series, else a regression."""
    units, activation = _dims(model.output_shape, "output"), last_activation(model)
    for name in ("multiclass", "binary"):
        kind = TASKS[name]
        if isinstance(kind, Classification) and kind.classes_of(activation, units) is not None:
            return name
    return "forecast" if window_like else "regression"


def manifest_for_plain_model(
    name: str,
    model: keras.Model,
    *,
    task: str | None = None,
    features: list[str] | None = None,
    classes: list[str] | None = None,
    input_scaler: Scaler | None = None,
    output_scaler: Scaler | None = None,
    units: str | None = None,
) -> ModelManifest:
    """Describe a ``.keras`` file made elsewhere: shapes and task from the model (the task may be declared), names
    defaulted, scalers explicit."""
    several = model_inputs(model)
    dims = [sum(i.width for i in several)] if several else _dims(model.input_shape, "input")
    if task is not None and task not in TASKS:
        raise BundleError(f"task {task!r} is not one of {sorted(TASKS)}")
    task = task or infer_task(model, not several and len(dims) == 2 and dims[1] == 1)
    kind = TASKS[task]
    common = {"name": name, "task": task, "input_scaler": input_scaler or Scaler(),
              "output_scaler": output_scaler or Scaler(), "lineage": Lineage(trigger="import"), "units": units or ""}
    if isinstance(kind, Classification):
        k = _classes(model, kind)
        classes = classes or [str(i) for i in range(k)]
        if len(classes) != k:
            raise BundleError(f"classes: {len(classes)} names given for a model with {k} classes")
        common["classes"] = classes
    elif classes:
        raise BundleError(f"classes: a {task} model has no classes")
    if several and kind.input_layout == "window":
        raise BundleError(f"task {task!r}: a model with several inputs ({[i.name for i in several]}) is a regression "
                          "or a classifier")
    if several:
        names = features or [f"{i.name}.{j}" for i in several for j in range(i.width)]
        if len(names) != dims[0]:
            raise BundleError(f"features: {len(names)} names given for a model whose inputs "
                              f"{[i.name for i in several]} take {dims[0]} values per row")
        common |= {"features": names, "inputs": several}
    elif kind.input_layout == "window":
        if len(dims) not in (1, 2) or (len(dims) == 2 and dims[1] != 1):
            raise BundleError(f"a forecast model takes (window, 1) inputs; this one takes {dims}")
        common |= {"features": features or ["value"], "window": dims[0]}
    else:
        if len(dims) != 1:
            raise BundleError(f"a {task} model takes (features,) inputs; this one takes {dims}")
        names = features or [f"f{i}" for i in range(dims[0])]
        if len(names) != dims[0]:
            raise BundleError(f"features: {len(names)} names given for a model with {dims[0]} inputs")
        common["features"] = names
    if not isinstance(kind, Classification):
        width = _dims(model.output_shape, "output")
        n = width[0] if len(width) == 1 else 0
        if n < 1:
            raise BundleError(f"a {task} model answers (outputs,) numbers; this one answers {width}")
        common["outputs"] = ["prediction"] if n == 1 else [f"output_{i}" for i in range(n)]
    try:
        return ModelManifest.model_validate(common)
    except ValidationError as exc:
        raise BundleError(f"invalid model description: {exc}") from exc


def check_model_matches(manifest: ModelManifest, model: keras.Model) -> None:
    """The manifest's input shapes must fit the model's, and a classifier's classes its probabilities."""
    several = model_inputs(model)
    if several or manifest.inputs:
        mine = {i.name: i.shape for i in manifest.inputs}
        theirs = {i.name: i.shape for i in several}
        if mine != theirs:
            raise BundleError(f"manifest describes inputs {mine or manifest.kind.model_dims(manifest)[0]} but the "
                              f"model takes {theirs or _dims(model.input_shape, 'input')}")
    else:
        dims = _dims(model.input_shape, "input")
        accepted = manifest.kind.model_dims(manifest)
        if dims not in accepted:
            raise BundleError(f"manifest describes inputs {accepted[0]} but the model takes {dims}")
    if isinstance(manifest.kind, Classification):
        k = _classes(model, manifest.kind)
        if k != len(manifest.classes):
            raise BundleError(f"manifest names {len(manifest.classes)} classes but the model gives {k}")
