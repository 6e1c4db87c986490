"""Stopping a test server frees its port, even when a process of its group outlives the leader (a server's forked
child holding the listening socket): a restart right after ``stop()`` must not find the port in use."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mitiga_devstack.process import ServerProcess, port_open

# a child that keeps the listening socket and ignores SIGTERM, under a shell that exits on it
LINGERING_CHILD = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(600)
"""


class Lingering(ServerProcess):
    name = "lingering"

    def prepare(self) -> None:
        (self.data_dir / "child.py").write_text(LINGERING_CHILD)

    def command(self) -> Sequence[str]:
        return ["sh", "-c", f"{sys.executable} child.py {self.port} & wait"]  # run in data_dir


def test_stop_waits_for_the_whole_group_and_frees_the_port(tmp_path: Path) -> None:
    server = Lingering(tmp_path).start()
    assert port_open(server.port, server.host)
    server.stop(timeout_s=1)  # the shell goes at SIGTERM, the child only at SIGKILL
    assert not port_open(server.port, server.host)
    server.start()  # not "port already in use"
    server.stop(timeout_s=1)
