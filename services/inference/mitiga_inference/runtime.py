"""A loaded model version: the compiled model call, its batcher and its in-flight count."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mitiga_core.bundle import load_keras, read_manifest
from mitiga_core.bundle.io import MODEL_FILE

if TYPE_CHECKING:
    from pathlib import Path

    from mitiga_core.bundle import ModelManifest
    from mitiga_core.types import FloatArray
    from mitiga_inference.batching import MicroBatcher


log = logging.getLogger(__name__)


def _buckets(limit: int) -> list[int]:
    """Powers of two up to ``limit``: the batch sizes the XLA path is compiled for."""
    sizes, size = [], 1
    while size <= limit:
        sizes.append(size)
        size *= 2
    return sizes


class CompiledModel:
    """The Keras model behind compiled calls, plus the manifest's scalers: original units in and out.

    Small batches run through an XLA-compiled function, padded up to a power of two so that only a few
    shapes are ever compiled (all of them during warm-up); larger batches run through a graph function
    with a fixed input signature, which never retraces. ``xla_max_rows=0`` turns XLA off.
    """

    def __init__(self, folder: Path, xla_max_rows: int = 32) -> None:
        import tensorflow as tf

        self.manifest: ModelManifest = read_manifest(folder)
        model = load_keras(folder / MODEL_FILE)
        several = self.manifest.inputs
        self._model_shape = () if several else tuple(int(d) for d in model.input_shape[1:])
        spec: list[Any] = [{i.name: tf.TensorSpec((None, *i.shape), tf.float32) for i in several}] if several else \
            [tf.TensorSpec((None, *self._model_shape), tf.float32)]

        def call(x: object) -> object:
            return model(x, training=False)

        self.weight_bytes = int(sum(w.numpy().nbytes for w in model.weights))
        """The model's weights in memory (the version's share of the memory gauge)."""
        self._graph = tf.function(call, input_signature=spec, autograph=False)
        self._xla = tf.function(call, input_signature=spec, autograph=False, jit_compile=True)
        self._buckets = _buckets(xla_max_rows)
        self._tf = tf

    def _run(self, scaled: FloatArray | dict[str, FloatArray], rows: int) -> FloatArray:
        bucket = next((b for b in self._buckets if b >= rows), None)
        if bucket is None:
            return np.asarray(self._graph(self._constant(scaled, 0)))
        return np.asarray(self._xla(self._constant(scaled, bucket - rows)))[:rows]

    def _constant(self, scaled: FloatArray | dict[str, FloatArray], pad: int) -> Any:
        """The model's input as tensors, padded with ``pad`` rows of zeros (each input of a model with several)."""
        if isinstance(scaled, dict):
            return {name: self._constant(values, pad) for name, values in scaled.items()}
        if pad:
            scaled = np.concatenate([scaled, np.zeros((pad, *scaled.shape[1:]), np.float32)])
        return self._tf.constant(scaled)

    def __call__(self, x: FloatArray) -> FloatArray:
        """``x`` is the manifest's flat rows: (rows, window) for forecasts, else (rows, features); returns the
        stored outputs (rows, outputs or classes)."""
        scaled = self.manifest.model_inputs(x)
        if not isinstance(scaled, dict):
            scaled = scaled.reshape(len(x), *self._model_shape)
        return self.manifest.output_values(self._run(scaled, len(x)))

    def warm_up(self, max_rows: int) -> None:
        """Compile every shape the model will see, so the first requests are not slow."""
        try:
            for rows in self._buckets:
                self(np.zeros((rows, self.manifest.input_width), np.float32))
        except Exception as exc:  # a layer XLA cannot compile: serve it with the graph function alone
            log.warning("XLA compilation failed; using the graph function", extra={"reason": str(exc)})
            self._buckets = []
        self(np.zeros((max(max_rows, (self._buckets or [0])[-1] + 1), self.manifest.input_width), np.float32))


class LoadedModel:
    def __init__(self, compiled: CompiledModel, batcher: MicroBatcher) -> None:
        self.compiled = compiled
        self.manifest = compiled.manifest
        self.cost = compiled.weight_bytes
        """What it adds to the replica's memory (``mitiga_inference.budget``)."""
        self.batcher = batcher
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def acquire(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def release(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def drain_and_close(self) -> None:
        """Wait for every request holding this version, then stop its batcher."""
        await self._idle.wait()
        await self.batcher.close()
