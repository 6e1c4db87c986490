"""The Redis state store against a real redis-server: the StateStore contract, expiry, locks, lists, and a
restart with AOF persistence."""

from __future__ import annotations

import threading
import time

import pytest

from mitiga_core.errors import Unavailable
from mitiga_core.state.redis import RedisStateStore

pytestmark = pytest.mark.integration


def test_contract(redis_db) -> None:
    store = RedisStateStore(redis_db.url)
    assert store.get("k") is None
    store.set("k", b"v")
    assert store.get("k") == b"v"
    assert store.set_if_absent("lock", b"a", ttl_s=30) is True
    assert store.set_if_absent("lock", b"b", ttl_s=30) is False
    assert store.get("lock") == b"a"
    assert store.delete("lock") is True and store.delete("lock") is False
    for i in range(5):
        store.append("list", str(i).encode(), max_items=3)
    assert store.items("list") == [b"2", b"3", b"4"]
    assert store.items("missing") == []
    with pytest.raises(ValueError, match="ttl_s"):
        store.set("k", b"v", ttl_s=0)
    store.set("held", b"first")
    assert store.set_many_if_absent({"held": b"second", "free": b"new"}, ttl_s=30) == ["held"]
    assert (store.get("held"), store.get("free")) == (b"first", b"new")
    store.close()


def test_keys_expire(redis_db) -> None:
    store = RedisStateStore(redis_db.url)
    store.set("short", b"1", ttl_s=0.2)
    assert store.get("short") == b"1"
    time.sleep(0.4)
    assert store.get("short") is None
    assert store.set_if_absent("short", b"2", ttl_s=10) is True


def test_unreachable_redis_raises_unavailable_after_retrying() -> None:
    from tests.conftest import free_port

    store = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0", retry_s=0.5)
    start = time.monotonic()
    with pytest.raises(Unavailable, match="redis unreachable"):
        store.get("k")
    assert time.monotonic() - start >= 0.3  # it retried with backoff before giving up


def test_a_restart_keeps_keys_and_calls_wait_for_it(tmp_path) -> None:
    """AOF on: keys survive a restart; a call made while Redis is down succeeds once it is back."""
    from mitiga_devstack.servers import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    store = RedisStateStore(server.url, retry_s=20)
    store.set("mitiga:retrain:lock:m", b"req-1", ttl_s=600)
    store.append("mitiga:labelled:m", b"row", max_items=10)
    server.stop()
    threading.Timer(1.5, server.start).start()
    assert store.get("mitiga:retrain:lock:m") == b"req-1"  # blocks through the restart, then answers
    assert store.items("mitiga:labelled:m") == [b"row"]
    assert store.set_if_absent("mitiga:retrain:lock:m", b"req-2") is False
    store.close()
    server.stop()


def test_champion_pointers_are_cached_in_redis_and_the_store_stays_the_truth(redis_db, tmp_path) -> None:
    from mitiga_core.store import FilesystemModelStore
    from mitiga_core.store.cached import ChampionCachedStore, champion_key

    files = FilesystemModelStore(tmp_path)
    for _ in range(2):
        files.write_version("m", lambda folder, version: (folder / "x").write_text(version))
    files.set_champion("m", "1")
    state = RedisStateStore(redis_db.url)
    cached = ChampionCachedStore(files, state, ttl_s=0.5)
    assert cached.champion("m") == "1" and state.get(champion_key("m")) == b"1"  # a miss fills the cache
    cached.set_champion("m", "2")
    assert files.champion("m") == "2" and state.get(champion_key("m")) == b"2"
    files.set_champion("m", "1")  # behind the cache's back: stale until the entry expires
    assert cached.champion("m") == "2"
    time.sleep(0.7)
    assert cached.champion("m") == "1"
    assert cached.champion("unknown") is None and state.get(champion_key("unknown")) is not None


def test_write_batches(redis_db) -> None:
    from tests.core.state_contract import (
        check_apply,
        check_bounded_set_in_a_batch,
        check_delete_if,
        check_set_bounded,
        check_staged,
    )

    store = RedisStateStore(redis_db.url)
    check_apply(store)
    check_staged(store)
    check_delete_if(store)
    check_set_bounded(store)
    check_bounded_set_in_a_batch(store)
    store.close()


def test_a_batch_whose_reply_was_lost_is_applied_once(redis_db, monkeypatch) -> None:
    """The batch reaches Redis but the connection drops before the reply: the retry must not apply it again."""
    import redis as redis_lib

    from mitiga_core.state import Write

    real_execute = redis_lib.client.Pipeline.execute
    lost: list[int] = []

    def execute_then_lose_the_reply(self, raise_on_error: bool = True):  # type: ignore[no-untyped-def]
        result = real_execute(self, raise_on_error)
        if not lost:
            lost.append(1)
            raise redis_lib.ConnectionError("connection reset by peer")
        return result

    monkeypatch.setattr(redis_lib.client.Pipeline, "execute", execute_then_lose_the_reply)
    store = RedisStateStore(redis_db.url)
    store.apply([Write("append", "labelled", b"row"), Write("set", "checkpoint", b"c")])
    assert lost == [1]
    assert store.items("labelled") == [b"row"]
    store.append("labelled", b"row2")
    assert store.items("labelled") == [b"row", b"row2"]
    client = redis_lib.Redis.from_url(redis_db.url)
    markers = list(client.scan_iter("mitiga:applied:*"))
    assert len(markers) == 2 and all(0 < client.pttl(m) <= 600_000 for m in markers)  # they expire
    client.close()
    store.close()


def test_the_store_reports_its_memory_and_limit(redis_db) -> None:
    import redis

    store = RedisStateStore(redis_db.url)
    client = redis.Redis.from_url(redis_db.url)
    client.config_set("maxmemory", 64 * 1024 * 1024)
    try:
        store.set("some", b"x" * 100_000)
        used, limit = store.memory() or (0, 0)
        assert used > 100_000 and limit == 64 * 1024 * 1024
    finally:
        client.config_set("maxmemory", 0)
        store.close()


def test_a_redis_with_a_password_takes_it_from_the_url(redis_db) -> None:
    """``requirepass``: the password travels in MITIGA_REDIS_URL (from a Secret in the chart)."""
    import redis

    admin = redis.Redis.from_url(redis_db.url)
    admin.config_set("requirepass", "s3cret-pass")
    try:
        host = redis_db.url.removeprefix("redis://")
        store = RedisStateStore(f"redis://:s3cret-pass@{host}")
        store.set("k", b"v")
        assert store.get("k") == b"v"
        store.close()
        anonymous = RedisStateStore(redis_db.url, retry_s=0.5)
        with pytest.raises(Unavailable):
            anonymous.get("k")
        anonymous.close()
    finally:
        authed = redis.Redis.from_url(f"redis://:s3cret-pass@{redis_db.url.removeprefix('redis://')}")
        authed.config_set("requirepass", "")
        authed.close()
        admin.close()
