"""The inference data plane: every transport (REST and gRPC) calls this one object."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mitiga_core import __version__
from mitiga_core.bundle import Scaler, import_archive, read_manifest
from mitiga_core.champion import promote
from mitiga_core.champion import rollback as roll_back
from mitiga_core.errors import InvalidInput, MitigaError, ModelNotFound, ModelNotReady
from mitiga_core.events import Topic, encode, new_id
from mitiga_core.pb.mitiga.v1 import events_pb2 as pb
from mitiga_core.store import existing_model_name as _named
from mitiga_core.tasks import TruthError
from mitiga_core.tokens import bearer_name
from mitiga_inference.metrics import UNKNOWN
from mitiga_inference.request_ids import RequestIds
from mitiga_inference.rows import decode_inputs, encode_outputs
from mitiga_inference.schemas import metadata
from mitiga_inference.tensors import InferRequest, InferResponse

if TYPE_CHECKING:
    from mitiga_core.bundle import ModelManifest
    from mitiga_core.bus import Bus
    from mitiga_core.publisher import EventPublisher
    from mitiga_core.state import StateStore
    from mitiga_core.store import ModelStore
    from mitiga_core.types import FloatArray
    from mitiga_inference.metrics import InferenceMetrics
    from mitiga_inference.repository import ModelRepository
    from mitiga_inference.routing import TrialRouter
    from mitiga_inference.schemas import FeedbackRequest, MetadataModelResponse
    from mitiga_inference.settings import InferenceSettings


def _matrix(arr: FloatArray) -> pb.Matrix:
    return pb.Matrix(shape=list(arr.shape), data=arr.reshape(-1).tolist())


def _data_time(parameters: dict[str, Any] | None, manifest: ModelManifest,
               settings: InferenceSettings) -> datetime | None:
    """The request's ``data_time``, which must lie between a little before the model's training data and a little
    after now: the retrainer orders rows by it and the gate holds out the recent ones, so a date in the future (or
    long before the model's data) would let a client choose what the next model is trained and judged on."""
    value = (parameters or {}).get("data_time")
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"parameters.data_time: {value!r} is not an ISO 8601 date or time") from exc
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    latest = datetime.now(UTC) + timedelta(seconds=settings.max_future_skew_s)
    if stamp > latest:
        raise InvalidInput(f"parameters.data_time: {value!r} lies in the future (at most "
                           f"{settings.max_future_skew_s:g} s ahead of the server's clock)")
    start = manifest.training.data_start
    if start:
        first = datetime.fromisoformat(start[:10]).replace(tzinfo=UTC)
        if stamp < first - timedelta(days=settings.max_days_before_training):
            raise InvalidInput(f"parameters.data_time: {value!r} lies more than "
                               f"{settings.max_days_before_training:g} days before the model's training data "
                               f"({start[:10]})")
    return stamp


class DataPlane:
    def __init__(
        self,
        *,
        settings: InferenceSettings,
        repository: ModelRepository,
        store: ModelStore,
        bus: Bus,
        publisher: EventPublisher,
        metrics: InferenceMetrics,
        state: StateStore,
        router: TrialRouter,
    ) -> None:
        self._settings = settings
        self._router = router
        self._ids = RequestIds(state, settings.request_id_ttl_s, metrics, settings.request_ids_max)
        self._backfill = settings.backfill_callers()
        """The tokens that may date their requests, by caller (read once: the request path asks on every call)."""
        self._repo = repository
        self._store = store
        self._bus = bus
        self._publisher = publisher
        self._metrics = metrics
        self.expected_models: list[str] = []

    # --- health and metadata ---
    def ready(self) -> bool:
        return all(self._repo.peek(name) is not None for name in self.expected_models)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "mitiga", "version": __version__, "extensions": ["model_repository", "feedback", "upload"]}

    async def model_metadata(self, name: str, version: str | None) -> MetadataModelResponse:
        await self._ensure(_named(name))
        loaded = self._repo.acquire(_named(name), version)
        loaded.release()
        return metadata(loaded.manifest, self._store.list_versions(name))

    def model_ready(self, name: str, version: str | None) -> bool:
        """Whether a request to the model would be answered: it is loaded, or (under a memory budget) registered
        and not failed to load, so that a request loads it."""
        if self._repo.loadable(_named(name), version):
            return True
        try:
            self._repo.acquire(_named(name), version).release()
        except ModelNotReady:
            return False
        return True

    async def _ensure(self, name: str) -> None:
        """Under a memory budget, load a registered model that is not loaded (the request waits), with its trial."""
        if self._repo.budget is not None and await self._repo.ensure(name):
            await self._router.reconcile(name)

    # --- inference ---
    def caller(self, authorization: str | None) -> str:
        """The caller an ``Authorization: Bearer`` credential names (a backfill token's name, ``admin``), or '' for
        an anonymous one (no credential, or one that names nobody: inference itself needs none)."""
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return ""
        return bearer_name(value, self._backfill) or ""

    async def infer(self, name: str, version: str | None, request: InferRequest) -> InferResponse:
        start = time.perf_counter()
        labels = ("", "")
        # a client-chosen id is kept (one key per such request, for request_id_ttl_s); a server-chosen one is a
        # random UUID no other request can guess
        request_id = request.id or str(uuid.uuid4())
        off_path = None
        self._router.answering(+1)
        try:
            if self._repo.budget is not None:  # only under a budget: no await on the usual request path
                await self._ensure(_named(name))
            if version is None:
                routing_key = str((request.parameters or {}).get("routing_key") or request_id)
                loaded, off_path = self._router.acquire(_named(name), routing_key)
            else:
                loaded = self._repo.acquire(_named(name), version)
            labels = (name, loaded.version)
            reserved = None
            try:
                x = decode_inputs(request, loaded.manifest)
                data_time = _data_time(request.parameters, loaded.manifest, self._settings)
                if data_time is not None and not (request.caller or self._settings.data_time_from == "anyone"):
                    self._metrics.data_time_ignored.labels(name).inc()
                    data_time = None  # an anonymous caller's request is dated by its arrival
                reserved = None if not request.id else await asyncio.to_thread(
                    self._ids.reserve, name, request_id, len(x) * loaded.manifest.kind.truth_width(loaded.manifest))
                y = await loaded.batcher.submit(x)
                outputs = encode_outputs(y, loaded.manifest, request.outputs)
                reserved = None  # answered: the id stays taken
            finally:
                loaded.release()
                if reserved is not None:  # not answered: the client may retry with the same id
                    self._ids.release(reserved)
        except MitigaError as exc:
            model_label = name if labels[1] or self._repo.peek(name) is not None else UNKNOWN
            self._metrics.errors.labels(model_label, labels[1], str(exc.status_code)).inc()
            raise
        finally:
            self._router.answering(-1)
        if self._settings.publish_events:
            self._publish_inference(request_id, loaded.manifest, x, y, data_time, caller=request.caller)
            if off_path is not None:
                self._router.off_path(name, off_path, x, lambda manifest, out: self._publish_inference(
                    request_id, manifest, x, out, data_time, shadow=True))
        self._metrics.requests.labels(*labels).inc()
        self._metrics.request_rows.labels(*labels).observe(len(x))
        self._metrics.latency.labels(*labels).observe(time.perf_counter() - start)
        return InferResponse(model_name=name, model_version=loaded.version, id=request_id, outputs=outputs,
                             parameters=request.parameters)

    def _publish_inference(self, request_id: str, manifest: ModelManifest, x: FloatArray, y: FloatArray,
                           data_time: datetime | None, *, shadow: bool = False, caller: str = "") -> None:
        now = datetime.now(UTC)

        def build() -> pb.InferenceEvent:
            event = pb.InferenceEvent(
                event_id=new_id(), request_id=request_id, model_name=manifest.name, model_version=manifest.version,
                feature_names=manifest.features, inputs=_matrix(x), outputs=_matrix(y),
                output_names=manifest.classes or manifest.outputs,
                shadow=shadow, caller=caller,
            )
            event.time.FromDatetime(now)
            if data_time is not None:
                event.data_time.FromDatetime(data_time)
            return event

        self._publisher.offer(Topic.INFERENCE, manifest.name, build, size=x.nbytes + y.nbytes + 256)

    # --- feedback ---
    async def feedback(self, name: str, request: FeedbackRequest, source: str = "") -> int:
        """Publish ground truth from the label ``source`` (the name of the token it carried). The publish waits for
        the bus (so a failure reaches the client instead of a drop) in a worker thread: a slow or unreachable Kafka
        never blocks the event loop that serves inference."""
        return await asyncio.to_thread(self._feedback, name, request, source)

    def _feedback(self, name: str, request: FeedbackRequest, source: str) -> int:
        manifest = self._served_manifest(name)
        truths = []
        for i, item in enumerate(request.items):
            try:
                truths.append(manifest.kind.truth(manifest, item.ground_truth))
            except TruthError as exc:
                raise InvalidInput(f"items[{i}].ground_truth: {exc}") from None
        self._ids.check_feedback(name, [(i.request_id, len(t)) for i, t in zip(request.items, truths, strict=True)])
        event = pb.FeedbackEvent(
            event_id=new_id(), model_name=name, source=source,
            items=[pb.Feedback(request_id=i.request_id, ground_truth=t)
                   for i, t in zip(request.items, truths, strict=True)],
        )
        event.time.GetCurrentTime()
        # Ground truth is scarce: publish synchronously so a failure reaches the client instead of a drop.
        try:
            self._bus.publish(Topic.FEEDBACK, encode(event, source=self._settings.service_name, key=name))
        except Exception as exc:
            raise ModelNotReady(f"feedback could not be published, retry later: {exc}") from exc
        self._metrics.feedback.labels(name).inc(len(request.items))
        return len(request.items)

    def _served_manifest(self, name: str) -> ModelManifest:
        """The manifest of the version this replica serves (else the champion's): what ground truth must fit."""
        loaded = self._repo.peek(_named(name))
        if loaded is not None:
            return loaded.manifest
        version = self._store.champion(name) or next(iter(reversed(self._store.list_versions(name))), None)
        if version is None:
            raise ModelNotFound(f"model {name!r} not found")
        return read_manifest(self._store.path(name, version))

    # --- model repository ---
    def repository_index(self) -> list[dict[str, str]]:
        return self._repo.index()

    async def load(self, name: str, version: str | None) -> str:
        return (await self._repo.load(_named(name), version)).version

    async def unload(self, name: str) -> None:
        await self._repo.unload(_named(name))

    async def load_beside(self, name: str, version: str) -> str:
        return (await self._repo.load_beside(_named(name), version)).version

    async def unload_beside(self, name: str, version: str) -> None:
        await self._repo.unload_beside(_named(name), version)

    async def upload(self, name: str, data: bytes, *, task: str | None, features: list[str] | None,
                     input_scaler: Scaler | None, output_scaler: Scaler | None, champion: bool,
                     classes: list[str] | None = None, units: str | None = None) -> str:
        """Register an uploaded model as a new version; as champion, serve it and announce the rollout."""
        manifest = await asyncio.to_thread(
            import_archive, self._store, name, data, task=task, features=features, classes=classes, units=units,
            input_scaler=input_scaler, output_scaler=output_scaler,
            max_unpacked_bytes=self._settings.max_unpacked_bytes,
        )
        if champion:
            rollout = promote(self._store, name, manifest.version, reason="upload")
            await self._repo.load(name, manifest.version)
            self._publisher.offer(Topic.ROLLOUT, name, lambda: rollout)
        return manifest.version

    async def rollback(self, name: str, version: str | None) -> dict[str, str]:
        """Return the champion to the previous one (or ``version``): serve it here, announce it to the others."""
        rollout = await asyncio.to_thread(roll_back, self._store, _named(name), version)
        await self._repo.load(name, rollout.version)
        self._publisher.offer(Topic.ROLLOUT, name, lambda: rollout)
        return {"name": name, "version": rollout.version, "previous_version": rollout.previous_version}
