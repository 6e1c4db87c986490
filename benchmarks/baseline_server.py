"""The seed-style baseline: a minimal server that calls ``model.predict`` once per request.

This is how the research app served its model. Usage: ``python baseline_server.py MODEL_DIR PORT``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI

from mitiga_core.bundle import load_keras, read_manifest


def build(folder: Path) -> FastAPI:
    manifest = read_manifest(folder)
    model = load_keras(folder / "model.keras")
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    def infer(name: str, body: dict[str, Any]) -> dict[str, Any]:
        tensor = body["inputs"][0]
        x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"][0], -1, 1)
        y = manifest.output_scaler.inverse(model.predict(manifest.input_scaler.transform(x), verbose=0))
        return {"model_name": name, "outputs": [{"name": "prediction", "shape": [len(y), 1], "datatype": "FP32",
                                                  "data": y.reshape(-1).tolist()}]}

    return app


if __name__ == "__main__":
    uvicorn.run(build(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
