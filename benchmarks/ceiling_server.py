"""The Python HTTP ceiling: FastAPI on uvicorn reading and JSON-parsing the request body and answering a constant.

No model, no validation, no events: what the stack mitiga's REST path is built on costs per request. The inference
bench measures it in the same run as mitiga (issue 31, P1). Usage: ``python ceiling_server.py PORT``.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from fastapi import FastAPI, Request, Response

ANSWER = json.dumps({"model_name": "lstm", "outputs": [{"name": "prediction", "shape": [1, 1], "datatype": "FP32",
                                                        "data": [35.0]}]}).encode()


def build() -> FastAPI:
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        json.loads(await request.body())
        return Response(ANSWER, media_type="application/json")

    return app


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
