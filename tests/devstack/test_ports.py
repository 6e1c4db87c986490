"""Ports for the servers a test starts: below the kernel's ephemeral range, where an outgoing connection (a Kafka
client's, say) could take a port between its choice and the server's bind; handed out in turn; a slice per
parallel worker."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mitiga_devstack import process
from mitiga_devstack.process import PORT_RANGE, ServerError, free_port


def ephemeral() -> range:
    first, last = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(first, last + 1)


def test_the_suite_starts_its_servers_below_the_ephemeral_range_and_the_node_ports() -> None:
    ports = process.port_range()
    assert ports is not None, f"{PORT_RANGE} is not set for the test session"
    assert ports.stop - 1 < min(ephemeral().start, 30000)
    worker, workers = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    assert len(ports) <= 10_000 // workers, (worker, ports)
    assert free_port() in ports


def test_ports_are_handed_out_in_turn_skipping_those_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE, "28990-28999")
    monkeypatch.setattr(process, "_cursor", [0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 28991))
        handed = [free_port() for _ in range(9)]
        assert handed == [28990, *range(28992, 29000)]  # in turn, never one in use, none twice
        held = []
        try:
            for port in handed:
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                held.append(s)
            with pytest.raises(ServerError, match="no free port"):
                free_port()
        finally:
            for s in held:
                s.close()


def test_without_a_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE)
    assert free_port() in ephemeral()
