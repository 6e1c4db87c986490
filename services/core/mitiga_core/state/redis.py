"""The Redis state store: plain keys with ``PX`` expiry, locks with ``SET NX PX`` (released by their owner with a
compare-and-delete script), bounded lists with
``RPUSH`` + ``LTRIM`` in one transaction, and write batches in one ``MULTI``/``EXEC`` that also sets a marker key,
so a batch whose reply was lost is not applied a second time by the retry.

While Redis is unreachable (a restart, a failover) every call retries with exponential backoff for up to
``redis_retry_s``; after that it raises :class:`~mitiga_core.errors.Unavailable`, which callers treat as "try
again later", never as a crash. Redis itself runs with AOF persistence, so keys survive its restart.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff

from mitiga_core.errors import Unavailable
from mitiga_core.state.base import UNBOUNDED, Bounded, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mitiga_core.state.base import Write

log = logging.getLogger(__name__)
T = TypeVar("T")


DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Compare-and-delete in one step (Redis runs a script atomically)."""

SET_BOUNDED = """
local px, max_items, max_bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local sized = max_bytes > 0
local refused, evicted = {}, {}
for i = 3, #KEYS do
  local value = ARGV[i + 1]
  local stored
  if px == '0' then stored = redis.call('SET', KEYS[i], value, 'NX')
  else stored = redis.call('SET', KEYS[i], value, 'PX', px, 'NX') end
  if stored then
    redis.call('ZADD', KEYS[1], redis.call('HINCRBY', KEYS[2], '#seq', 1), KEYS[i])
    if sized then
      local size = string.len(KEYS[i]) + string.len(value)
      local old = tonumber(redis.call('HGET', KEYS[2], KEYS[i]) or '0')
      redis.call('HSET', KEYS[2], KEYS[i], size)
      redis.call('HINCRBY', KEYS[2], '#bytes', size - old)
    end
  else
    table.insert(refused, KEYS[i])
  end
end
while redis.call('ZCARD', KEYS[1]) > max_items
    or (sized and tonumber(redis.call('HGET', KEYS[2], '#bytes') or '0') > max_bytes) do
  local oldest = redis.call('ZPOPMIN', KEYS[1])
  if #oldest == 0 then break end
  local key = oldest[1]
  if sized then
    redis.call('HINCRBY', KEYS[2], '#bytes', -tonumber(redis.call('HGET', KEYS[2], key) or '0'))
    redis.call('HDEL', KEYS[2], key)
  end
  if redis.call('DEL', key) == 1 then table.insert(evicted, key) end
end
if px ~= '0' then
  redis.call('PEXPIRE', KEYS[1], px)
  redis.call('PEXPIRE', KEYS[2], px)
end
return {refused, evicted}
"""
"""Keys noted in an index (a sorted set in insertion order; a hash with its sequence number and, under a byte
bound (``max_bytes`` > 0), each key's size and the running total), the oldest evicted beyond the bounds, in one
step."""


def _px(ttl_s: float | None) -> int | None:
    if ttl_s is None:
        return None
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    return max(1, int(ttl_s * 1000))


class RedisStateStore(StateStore):
    def __init__(self, url: str, retry_s: float = 30.0) -> None:
        self._retry_s = retry_s
        self._backoff = ExponentialBackoff(cap=2.0, base=0.05)
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                                 health_check_interval=10)
        self._delete_if = self._client.register_script(DELETE_IF)
        self._set_bounded = self._client.register_script(SET_BOUNDED)

    def _call(self, op: Callable[[], T]) -> T:
        deadline = time.monotonic() + self._retry_s
        failures = 0
        while True:
            try:
                return op()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                failures += 1
                pause = self._backoff.compute(failures)
                if time.monotonic() + pause > deadline:
                    raise Unavailable(f"redis unreachable after {failures} attempts: {exc}") from exc
                if failures == 1:
                    log.warning("redis unreachable, retrying", extra={"reason": str(exc)})
                time.sleep(pause)

    def get(self, key: str) -> bytes | None:
        value = self._call(lambda: self._client.get(key))
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        px = _px(ttl_s)
        self._call(lambda: self._client.set(key, value, px=px))

    def set_if_absent(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        px = _px(ttl_s)
        return bool(self._call(lambda: self._client.set(key, value, px=px, nx=True)))

    def set_many(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> None:
        px = _px(ttl_s)

        def op() -> None:
            pipe = self._client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, px=px)
            pipe.execute()

        if items:
            self._call(op)

    def set_many_if_absent(self, items: Mapping[str, bytes], ttl_s: float | None = None) -> list[str]:
        px = _px(ttl_s)

        def op() -> list[str]:
            pipe = self._client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, px=px, nx=True)
            return [key for key, stored in zip(items, pipe.execute(), strict=True) if not stored]

        return self._call(op) if items else []

    def delete(self, key: str) -> bool:
        return bool(self._call(lambda: self._client.delete(key)))

    def set_bounded(self, index: str, items: Mapping[str, bytes], *, ttl_s: float, max_items: int,
                    max_bytes: int | None = None) -> Bounded:
        if not items:
            return Bounded([], [])
        keys = [index, f"{index}:sizes", *items]
        args: list[bytes | int] = [_px(ttl_s) or 1, max_items, max_bytes or 0, *items.values()]
        refused, evicted = self._call(lambda: self._set_bounded(keys=keys, args=args))
        return Bounded([k.decode() for k in refused], [k.decode() for k in evicted])

    def delete_if(self, key: str, value: bytes) -> bool:
        return bool(self._call(lambda: self._delete_if(keys=[key], args=[value])))

    def apply(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        pxs = [_px(w.ttl_s) for w in writes]
        marker = f"mitiga:applied:{uuid.uuid4().hex}"
        marker_px = _px(max(600.0, 4 * self._retry_s))
        sent = False

        def op() -> None:
            nonlocal sent
            if sent and self._client.exists(marker):
                return  # the earlier attempt was applied; only its reply was lost
            pipe = self._client.pipeline(transaction=True)
            for write, px in zip(writes, pxs, strict=True):
                if write.op == "set" and write.index is not None:
                    self._set_bounded(keys=[write.index, f"{write.index}:sizes", write.key],
                                      args=[px or 0, write.max_items or UNBOUNDED, write.max_bytes or 0,
                                            write.value], client=pipe)
                elif write.op == "set":
                    pipe.set(write.key, write.value, px=px)
                elif write.op == "delete":
                    pipe.delete(write.key)
                else:
                    pipe.rpush(write.key, write.value)
                    if write.max_items is not None:
                        pipe.ltrim(write.key, -write.max_items, -1)
            pipe.set(marker, b"1", px=marker_px)
            sent = True
            pipe.execute()

        self._call(op)

    def items(self, key: str) -> list[bytes]:
        return [bytes(v) for v in self._call(lambda: self._client.lrange(key, 0, -1))]

    def memory(self) -> tuple[int, int] | None:
        """(bytes used, ``maxmemory`` limit; 0 = none), or None when Redis does not answer now (no retries)."""
        try:
            info = self._client.info("memory")
        except redis.RedisError:
            return None
        return int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))

    def ping(self) -> bool:
        """True when Redis answers now (no retries): for readiness probes."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self._client.close()
