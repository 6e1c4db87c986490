"""The dead-letter topic: a message a consumer cannot use is republished to ``mitiga.dlq`` unchanged, with the
reason, the source topic and offset in ``mitiga_dlq_*`` headers, so it can be inspected and replayed.

The record is stored durably before this returns (``Bus.publish_durably``): the consumer commits the offset that
skipped the message only after, so a dead letter is never lost to a broker hiccup; when it cannot be stored this
raises ``Unavailable`` and the batch is delivered again."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from mitiga_core.events import Topic

if TYPE_CHECKING:
    from mitiga_core.bus import Bus, Record

log = logging.getLogger(__name__)

REASON, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = (
    "mitiga_dlq_reason", "mitiga_dlq_topic", "mitiga_dlq_partition", "mitiga_dlq_offset")


def dead_letter(bus: Bus, record: Record, reason: str) -> None:
    headers = {**record.envelope.headers, REASON: reason[:1000], SOURCE_TOPIC: record.topic,
               SOURCE_PARTITION: str(record.partition), SOURCE_OFFSET: str(record.offset)}
    bus.publish_durably(Topic.DLQ, replace(record.envelope, headers=headers))
    log.warning("event dead-lettered", extra={"topic": record.topic, "offset": record.offset, "reason": reason})
