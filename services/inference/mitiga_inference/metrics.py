"""Prometheus metrics of the inference service, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
UNKNOWN = "_unknown"
"""Label used for the model of a request naming a model that does not exist (bounded cardinality)."""


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter("mitiga_inference_requests", "Inference requests served.", labels,
                                registry=self.registry)
        self.errors = Counter("mitiga_inference_errors", "Inference requests that failed, by HTTP status.",
                              [*labels, "code"], registry=self.registry)
        self.latency = Histogram("mitiga_inference_request_duration_seconds", "Time to serve an inference request.",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.request_rows = Histogram("mitiga_inference_request_rows", "Rows per inference request.", labels,
                                      buckets=ROW_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("mitiga_inference_batch_rows", "Rows per executed micro-batch.", labels,
                                    buckets=ROW_BUCKETS, registry=self.registry)
        self.served_version = Gauge("mitiga_inference_model_info", "1 for the version each model serves.", labels,
                                    registry=self.registry)
        self.memory = Gauge("mitiga_inference_model_memory_bytes", "Weights in memory of each loaded version.",
                            labels, registry=self.registry)
        self.loads = Counter("mitiga_inference_model_loads", "Model versions loaded, by what asked (startup, request: "
                             "a cold request under MITIGA_MODEL_MEMORY_BUDGET, rollout, admin).", ["trigger"],
                             registry=self.registry)
        self.load_seconds = Histogram("mitiga_inference_model_load_seconds", "Time to load, compile and warm a model "
                                      "version.", ["trigger"], buckets=LOAD_BUCKETS, registry=self.registry)
        self.evictions = Counter("mitiga_inference_model_evictions", "Models unloaded to stay within "
                                 "MITIGA_MODEL_MEMORY_BUDGET (least recently used first).", registry=self.registry)
        self.loaded_models = Gauge("mitiga_inference_loaded_models", "Models loaded under the memory budget.",
                                   registry=self.registry)
        self.loaded_bytes = Gauge("mitiga_inference_loaded_bytes", "Resident memory the loaded models added, as "
                                  "measured at their loads (the budget's measure).", registry=self.registry)
        self.budget_bytes = Gauge("mitiga_inference_memory_budget_bytes",
                                  "MITIGA_MODEL_MEMORY_BUDGET in bytes (unset: 0).", registry=self.registry)
        self.swaps = Counter("mitiga_inference_model_swaps", "Model versions switched in.", ["model"],
                             registry=self.registry)
        self.trial_requests = Counter("mitiga_inference_trial_requests", "Unversioned requests of a model with a "
                                      "candidate on live trial, by the version that answered (role champion or "
                                      "candidate).", [*labels, "role"], registry=self.registry)
        self.shadow = Counter("mitiga_inference_shadow_predictions", "Predictions made off the request path for a "
                              "live trial, by outcome (ok, failed, dropped: too many in flight, not_loaded).",
                              [*labels, "outcome"], registry=self.registry)
        self.feedback = Counter("mitiga_inference_feedback_items", "Ground-truth items accepted.", ["model"],
                                registry=self.registry)
        self.data_time_ignored = Counter("mitiga_inference_data_time_ignored",
                                         "Requests whose parameters.data_time was not honoured: an anonymous caller's "
                                         "(MITIGA_DATA_TIME_FROM=backfill), dated by their arrival.", ["model"],
                                         registry=self.registry)
        self.evicted_ids = Counter("mitiga_inference_request_ids_evicted",
                                   "Client-chosen request ids forgotten before their time, to keep the model within "
                                   "MITIGA_REQUEST_IDS_MAX.", ["model"], registry=self.registry)
        self.unchecked_ids = Counter("mitiga_inference_request_ids_unchecked",
                                     "Requests served without checking that their id is unused (state store down).",
                                     ["model"], registry=self.registry)
