"""The Kafka bus (kafka-python): keyed protobuf records with CloudEvents attributes as headers (binary mode).

Producer: ``acks=all``, idempotent, batched with a linger. ``publish`` only appends to the producer's buffer; while
the broker is away records wait there (up to the delivery timeout, at most ``kafka_max_pending`` of them) and are
delivered after it returns. ``publish`` raises for a record it cannot accept (the caller counts it: the event
publisher in ``mitiga_events_dropped_total``); one accepted but never delivered is counted in
``mitiga_bus_delivery_failed_total{topic,reason}``.

Consumers: consumer groups, no auto-commit, offsets committed by the caller after processing (at least once).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition
from prometheus_client import Counter

from mitiga_core.bus.base import Bus, Consumer, Record
from mitiga_core.errors import Unavailable
from mitiga_core.events import Envelope, Topic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prometheus_client.registry import Collector

    from mitiga_core.settings import CoreSettings

log = logging.getLogger(__name__)

ALL_TOPICS: tuple[str, ...] = (Topic.INFERENCE, Topic.FEEDBACK, Topic.DRIFT, Topic.RETRAIN, Topic.ROLLOUT,
                               Topic.PROGRESS, Topic.DLQ)


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _servers(settings: CoreSettings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


def connection(settings: CoreSettings) -> dict[str, Any]:
    """The options every Kafka client takes: the brokers, and how to authenticate and encrypt."""
    options: dict[str, Any] = {"bootstrap_servers": _servers(settings), "client_id": settings.service_name,
                               "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username, "sasl_plain_password": password}
    if settings.kafka_security_protocol.endswith("SSL") and settings.kafka_ssl_cafile:
        options["ssl_cafile"] = settings.kafka_ssl_cafile
    return options


class KafkaBus(Bus):
    def __init__(self, settings: CoreSettings, topics: Sequence[str] = ALL_TOPICS) -> None:
        self._settings = settings
        self._topics = tuple(topics)
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._topics_ready = False
        self._pending = 0
        """Records sent and not yet acknowledged or failed."""
        self.failed = Counter("mitiga_bus_delivery_failed", "Records the Kafka producer accepted but could not "
                              "deliver (given up after the delivery timeout).", ["topic", "reason"], registry=None)

    # --- topics ---
    def ensure_topics(self) -> None:
        """Create the mitiga topics that are missing (``kafka_partitions`` each). Raises KafkaError when the
        cluster cannot be reached."""
        if self._topics_ready:
            return
        admin = KafkaAdminClient(**connection(self._settings),
                                 request_timeout_ms=10_000,
                                 bootstrap_timeout_ms=int(self._settings.kafka_bootstrap_timeout_s * 1000))
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(t, self._settings.kafka_partitions, self._settings.kafka_replication)
                       for t in self._topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another service won the race
                    admin.create_topics(missing)
                log.info("kafka topics created", extra={"topics": [t.name for t in missing]})
        finally:
            admin.close()
        self._topics_ready = True

    # --- producing ---
    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                s = self._settings
                self.ensure_topics()
                self._producer = KafkaProducer(
                    **connection(s), acks="all", enable_idempotence=True,
                    linger_ms=s.kafka_linger_ms, batch_size=s.kafka_batch_bytes,
                    max_request_size=s.max_message_bytes + 4096,  # the message, its key, headers and framing
                    delivery_timeout_ms=int(s.kafka_delivery_timeout_s * 1000),
                    max_block_ms=int(s.kafka_max_block_s * 1000), retries=2**31 - 1,
                    reconnect_backoff_max_ms=2000, bootstrap_timeout_ms=int(s.kafka_bootstrap_timeout_s * 1000))
            return self._producer

    def publish(self, topic: str, envelope: Envelope) -> None:
        # a record refused here raises (the caller counts or reports it); one lost after it was accepted is counted
        # here, since nobody else sees it
        with self._count_lock:
            if self._pending >= self._settings.kafka_max_pending:
                raise ConnectionError(f"kafka: {topic}: {self._pending} records await delivery; buffer full")
            self._pending += 1
        try:
            producer = self._get_producer()
            future = producer.send(topic, value=envelope.payload,
                                   key=None if envelope.key is None else envelope.key.encode(),
                                   headers=[(k, v.encode()) for k, v in envelope.headers.items()])
        except KafkaError as exc:
            self._settle()
            raise ConnectionError(f"kafka: {topic}: {exc}") from exc
        future.add_callback(self._delivered)
        future.add_errback(self._delivery_failed, topic)

    def publish_durably(self, topic: str, envelope: Envelope, timeout_s: float = 10.0) -> None:
        try:
            future = self._get_producer().send(topic, value=envelope.payload,
                                               key=None if envelope.key is None else envelope.key.encode(),
                                               headers=[(k, v.encode()) for k, v in envelope.headers.items()])
            future.get(timeout=timeout_s)  # acknowledged by the broker (acks as configured), or raises
        except KafkaError as exc:
            self.failed.labels(topic, "delivery").inc()
            raise Unavailable(f"kafka: {topic}: the record was not stored: {exc}") from exc

    @property
    def pending(self) -> int:
        return self._pending

    def _settle(self) -> None:
        with self._count_lock:
            self._pending -= 1

    def _delivered(self, _metadata: object) -> None:
        self._settle()

    def _delivery_failed(self, exc: BaseException, topic: str) -> None:
        self._settle()
        self.failed.labels(topic, "delivery").inc()
        log.error("kafka delivery failed", extra={"topic": topic, "reason": str(exc)})

    def collectors(self) -> list[Collector]:
        return [self.failed]

    def flush(self, timeout_s: float = 10.0) -> None:
        if self._producer is not None:
            try:
                self._producer.flush(timeout=timeout_s)
            except KafkaError:
                log.warning("kafka flush timed out", extra={"timeout_s": timeout_s})

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=10)
                self._producer = None

    # --- consuming ---
    def subscribe(self, topics: Sequence[str], group_id: str) -> Consumer:
        self.ensure_topics()
        return KafkaBusConsumer(self._settings, list(topics), group_id)


class KafkaBusConsumer(Consumer):
    """A consumer group member. Not thread-safe: poll, commit and close from one thread."""

    def __init__(self, settings: CoreSettings, topics: list[str], group_id: str) -> None:
        self._consumer = KafkaConsumer(
            **connection(settings), group_id=group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", reconnect_backoff_max_ms=2000,
            bootstrap_timeout_ms=int(settings.kafka_bootstrap_timeout_s * 1000),
            session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.kafka_session_timeout_s * 1000 / 3))
        # Know the topics' partitions before joining the group: a member that joins first and leads the assignment
        # finds "no partition metadata", is assigned nothing, and waits for the next metadata refresh (minutes).
        deadline = time.monotonic() + settings.kafka_bootstrap_timeout_s
        while any(not self._consumer.partitions_for_topic(t) for t in topics) and time.monotonic() < deadline:
            time.sleep(0.2)
        self._consumer.subscribe(topics)
        self._lag: dict[tuple[str, int], int] = {}

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Record]:
        batches: dict[Any, list[Any]] = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        records = [
            Record(tp.topic, tp.partition, r.offset,
                   Envelope(payload=r.value or b"", headers={k: _text(v) for k, v in r.headers or []},
                            key=None if r.key is None else _text(r.key)))
            for tp, rs in batches.items() for r in rs
        ]
        self._update_lag()
        return records

    def _update_lag(self) -> None:
        lag: dict[tuple[str, int], int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - self._consumer.position(tp))
        self._lag = lag

    def lag(self) -> dict[tuple[str, int], int]:
        return dict(self._lag)

    def assignment(self) -> frozenset[tuple[str, int]]:
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def owns(self, topic: str, key: str) -> bool:
        # the producer's default partitioner: murmur2 of the key over the topic's partitions (as Java's does)
        partitions = sorted(self._consumer.partitions_for_topic(topic) or ())
        if not partitions:
            return False
        partition = partitions[(murmur2(key.encode()) & 0x7FFFFFFF) % len(partitions)]
        return TopicPartition(topic, partition) in self._consumer.assignment()

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except CommitFailedError:  # the group rebalanced: these records go to the new owner again
            log.warning("kafka commit failed after a rebalance; records will be redelivered")

    def close(self) -> None:
        self._consumer.close(autocommit=False)
