"""Settings of the inference service (``MITIGA_*`` environment variables)."""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - pydantic reads the annotation at run time
from typing import Literal

from pydantic import ByteSize, Field, SecretStr

from mitiga_core.settings import CoreSettings


class InferenceSettings(CoreSettings):
    service_name: str = "mitiga-inference"

    # --- server ---
    host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    """Address to listen on."""

    port: int = Field(default=8080, ge=1, le=65535)
    """HTTP port of the Open Inference Protocol REST API."""

    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the Open Inference Protocol gRPC API (the KServe / Triton ``GRPCInferenceService``), on the same
    data plane as REST. Unset: no gRPC (the Helm chart and the image turn it on at 8081). 0: any free port."""

    shutdown_grace_s: float = Field(default=20.0, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish."""

    # --- models ---
    models: list[str] = Field(default_factory=list)
    """Models to serve (their champion versions). Empty: every model in the store (with ``model_memory_budget``:
    none at start-up, each on its first request)."""

    model_versions: dict[str, str] = Field(default_factory=dict)
    """Pinned versions, e.g. ``{"lstm": "3"}`` (the Helm chart sets them). A pinned model serves that version and
    ignores rollout events: a new version arrives by a new pinned configuration (``helm upgrade`` rolls the pods).
    Unpinned models follow the model store's champion and hot-swap on rollout events."""

    model_memory_budget: ByteSize | None = None
    """Memory the loaded models may take in this replica (``2GiB``, ``500MB`` or bytes). Set: only the models of
    ``models``/``model_versions`` load at start-up and are never unloaded; any other registered model loads on its
    first request (which waits for it) and the least recently used are unloaded past the budget (a model with a
    candidate on trial never is). A model's cost is the resident memory its load added. Unset: every model in
    ``models`` (empty: every registered model) loads at start-up and stays."""

    # --- batching ---
    max_batch_rows: int = Field(default=256, ge=1)
    """Largest micro-batch, in rows. A single larger request runs alone."""

    max_batch_wait_ms: float = Field(default=0.0, ge=0)
    """Extra wait for more rows once a batch has begun forming. 0 = adaptive: requests that
    arrive while a batch runs form the next one, and a lone request never waits."""

    model_concurrency: int = Field(default=2, ge=1, le=16)
    """Batches of one model version run at once (Triton's instance count). One large call of a recurrent model
    rarely keeps every core busy, so 2 adds throughput for large requests on a multi-core machine (the inference
    bench: ``benchmarks/results/inference.md``); each adds the memory of one call. Work smaller than
    ``xla_max_rows`` rows waits for the batch in flight instead (small calls gain nothing beside another)."""

    max_queued_rows: int = Field(default=8192, ge=1)
    """Rows waiting for a model at most; a request past it is refused at once (429 with ``Retry-After``, gRPC
    ``RESOURCE_EXHAUSTED``) and counted in ``mitiga_inference_errors_total{code="429"}``."""

    access_log: bool = False
    """A log record per HTTP request (uvicorn's access log). Off by default: at INFO level it took a quarter of a
    1-row request's time (docs/benchmarks.md, P1); requests, errors and latencies are counted in the metrics."""

    max_concurrent_requests: int = Field(default=1024, ge=1)
    """Connections and tasks the REST server takes at once (uvicorn answers 503 past it); gRPC calls in flight at
    once (``RESOURCE_EXHAUSTED`` past it)."""

    xla_max_rows: int = Field(default=32, ge=0, le=1024)
    """Batches up to this many rows run XLA-compiled (padded to a power of two); larger ones run as a
    plain graph. 0 turns XLA off. Warm-up compiles each power of two once per loaded version."""
    max_loaded_versions: int = Field(default=2, ge=1, le=16)
    """Versions of one model loaded at once: the one the unversioned routes serve and those loaded beside it
    (``POST /v2/repository/models/{name}/versions/{v}/load``) for their versioned routes."""

    max_shadow_in_flight: int = Field(default=1024, ge=1)
    """Off-path predictions of a live trial (the candidate's in shadow, the champion's beside a canary) queued at
    once; past it one is dropped (counted in ``mitiga_inference_shadow_predictions{outcome="dropped"}``), never the
    request."""

    max_shadow_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Bytes of inputs the queued off-path predictions may hold; past it one is dropped (and counted)."""

    shadow_linger_ms: float = Field(default=500.0, ge=0, le=5000)
    """Off-path predictions of one version are gathered this long and run in batches of up to ``max_batch_rows``:
    a few model calls per linger instead of one per request, so few requests being answered meet one (the trial's
    bench: ``benchmarks/trial_bench.py``). The predictions reach the detector this much later, which only waits."""

    # --- events ---
    publish_events: bool = True
    """Publish an InferenceEvent for every served request."""

    event_buffer_size: int = Field(default=10_000, ge=1)
    """Events held while the bus is slow; past it they are dropped and counted."""

    event_buffer_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    """Bytes of events (inputs and outputs) the publish buffer holds at most; past it events are dropped and
    counted (``reason="buffer_full"``), never the request."""

    event_linger_s: float = Field(default=0.1, gt=0, le=5)
    """The event publisher sends one batch per model at most this often: fewer, larger bus messages cost the
    request path less (the Kafka client runs in this process and competes for the GIL)."""

    # --- limits and admin ---
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body (413 above it)."""

    max_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    """Largest model upload (413 above it)."""

    max_unpacked_bytes: int = Field(default=1 << 30, ge=1024)
    """Largest size an upload may unpack to (each zip member, and all together, of the bundle and of its ``.keras``
    file), checked before it is unpacked."""

    admin_token: SecretStr | None = None
    """Bearer token for the admin endpoints (upload, load, unload). Unset: they answer 403."""

    feedback_token: SecretStr | None = None
    """Bearer token that ground-truth feedback must carry (its label source is named ``default``). Unset, with no
    ``feedback_tokens`` either: feedback is open to whoever reaches the service (fine only where nothing but the
    label owners can). Separate from the admin token: a labelling system needs this one and nothing more."""

    feedback_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """One token per label source, by name (JSON: ``{"crm": "...", "annotators": "..."}``), beside or instead of
    ``feedback_token``: each feedback event records the source whose token it carried, and the gate caps what one
    source gives its holdout (the retrainer's ``max_source_share``)."""

    feedback_tokens_dir: Path | None = None
    """A directory with one file per label source (a mounted Secret, the chart's ``feedbackToken.sourcesSecret``):
    the file's name is the source's, its content the token; read at start, beside ``feedback_tokens``."""


    redis_retry_s: float = Field(default=1.0, ge=0)
    """How long a state-store call retries before giving up: short here, since the request ids are the only state
    and a request is served (and counted) rather than kept waiting when Redis is away."""

    request_id_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """How long a request id the client chose stays taken for its model: reusing it meanwhile is refused (409), so
    no request can take over another's stored prediction and receive its ground truth. Match the detector's
    ``feedback_ttl_s``. Shared across replicas when the state store is Redis."""

    request_ids_max: int = Field(default=200_000, ge=1)
    """Client-chosen request ids kept per model: beyond, the oldest are forgotten and counted
    (``mitiga_inference_request_ids_evicted_total``), so the state store stays bounded whatever the traffic. Keep it
    at least the detector's ``predictions_max``: an id forgotten here may be used again, and the detector then keeps
    the older prediction if it still holds it."""

    backfill_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """Callers allowed to date their requests (``parameters.data_time``: a replay, a backfill of history), by name
    (JSON: ``{"etl": "..."}``); the admin token is one too (named ``admin``). A request carries its token as
    ``Authorization: Bearer``; a request without one is served as any, and its ``data_time`` is not honoured."""

    data_time_from: Literal["backfill", "anyone"] = "backfill"
    """Whose ``parameters.data_time`` is honoured: ``backfill``, only callers with a backfill (or the admin) token;
    others' requests are dated by their arrival (counted in ``mitiga_inference_data_time_ignored_total``), so a
    client cannot choose where its ground truth falls in time, nor so what the gate holds out. ``anyone``: every
    caller's, for a replay harness (``make demo``, the test stacks) that owns the service."""

    max_future_skew_s: float = Field(default=24 * 3600.0, ge=0)
    """``parameters.data_time`` may lie at most this far in the future (clock skew, time zones); later is a 400."""

    max_days_before_training: float = Field(default=365.0, ge=0)
    """``parameters.data_time`` may lie at most this many days before the start of the model's training data;
    earlier is a 400 (such rows would be old data relabelled as new)."""

    def backfill_callers(self) -> dict[str, SecretStr]:
        """Every token that may date its requests, by its caller's name."""
        admin = {"admin": self.admin_token} if self.admin_token is not None else {}
        return {**admin, **self.backfill_tokens}

    def feedback_sources(self) -> dict[str, SecretStr]:
        """Every feedback token by its source's name (``feedback_tokens_dir`` read now); empty when feedback is open."""
        default = {"default": self.feedback_token} if self.feedback_token is not None else {}
        mounted = {} if self.feedback_tokens_dir is None else {
            path.name: SecretStr(path.read_text().strip()) for path in sorted(self.feedback_tokens_dir.iterdir())
            if path.is_file() and not path.name.startswith(".")}  # a mounted Secret's ..data links are hidden
        return {**default, **mounted, **self.feedback_tokens}
