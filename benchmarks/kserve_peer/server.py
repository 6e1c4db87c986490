"""The KServe peer of the inference bench: the same Keras model behind a KServe ModelServer, as a KServe custom
predictor is written (a ``kserve.Model`` whose ``predict`` runs a compiled ``tf.function``; one worker, KServe's
defaults otherwise, without per-request log lines). It runs in a venv of its own
(``scripts/build-kserve-peer.sh``: kserve needs numpy 2, mitiga's pins hold numpy below 2) and reads the mitiga
bundle's manifest only for its scalers.

Usage: ``python server.py BUNDLE_FOLDER HTTP_PORT GRPC_PORT``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class KerasPredictor(Model):  # type: ignore[misc] # kserve is not installed beside mitiga
    def __init__(self, name: str, folder: Path) -> None:
        super().__init__(name)
        self.folder = folder
        self.load()

    def load(self) -> bool:
        import keras
        import tensorflow as tf

        manifest = json.loads((self.folder / "manifest.json").read_text())
        model = keras.saving.load_model(self.folder / "model.keras", compile=False)
        shape = tuple(int(d) for d in model.input_shape[1:])
        self._shape = shape
        self._forecast = manifest["task"] == "forecast"
        scalers = manifest["input_scaler"], manifest["output_scaler"]
        self._in, self._out = [(np.asarray(s.get("offset") or [0.0], np.float32),
                                np.asarray(s.get("scale") or [1.0], np.float32)) for s in scalers]
        self._fn = tf.function(lambda x: model(x, training=False), autograph=False,
                               input_signature=[tf.TensorSpec((None, *shape), tf.float32)])
        self._fn(np.zeros((1, *shape), np.float32))  # trace once
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32)
        scaled = ((x[..., None] if self._forecast else x) - self._in[0]) / self._in[1]
        y = np.asarray(self._fn(scaled.reshape(len(x), *self._shape))).reshape(len(x), -1)
        values = (y * self._out[1] + self._out[0]).astype(np.float32)
        output = InferOutput(name="output", shape=list(values.shape), datatype="FP32")
        output.set_data_from_numpy(values, binary_data=False)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])


def main(argv: list[str]) -> Any:
    folder, http_port, grpc_port = Path(argv[0]), int(argv[1]), int(argv[2])
    server = ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1, enable_latency_logging=False)
    for name in ("uvicorn.access", "kserve.trace"):  # no per-request log lines: mitiga's bench logs none either
        logging.getLogger(name).disabled = True
    return server.start([KerasPredictor("lstm", folder)])


if __name__ == "__main__":
    main(sys.argv[1:])
