"""A server process on a loopback port: started, probed until ready, stopped by pid (TERM, then KILL)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO = Path(__file__).resolve().parents[3]
"""The repository root (scripts live in ``scripts/``)."""

CACHE = Path(os.environ.get("MITIGA_CACHE", Path.home() / ".cache" / "mitiga"))


class ServerError(RuntimeError):
    """A server that could not be installed or did not become ready."""


PORT_RANGE = "MITIGA_PORT_RANGE"
_cursor: list[int] = []


def port_range() -> range | None:
    """``MITIGA_PORT_RANGE`` (``first-last``), or None."""
    spec = os.environ.get(PORT_RANGE, "").strip()
    if not spec:
        return None
    first, _, last = spec.partition("-")
    return range(int(first), int(last) + 1)


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server about to start.

    Without ``MITIGA_PORT_RANGE`` the kernel picks it, from its ephemeral range, where an outgoing connection may
    take it before the server binds it. With a range (the test suite sets one below the ephemeral range, and one of
    its own for each parallel worker), ports are handed out in turn from a random starting point, skipping any in
    use, so a port is not handed out again until the range wraps around."""
    ports = port_range()
    if ports is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    if not _cursor:
        _cursor.append(random.randrange(len(ports)))
    for _ in range(len(ports)):
        port = ports[_cursor[0] % len(ports)]
        _cursor[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServerError(f"no free port on 127.0.0.1 in {PORT_RANGE}={os.environ[PORT_RANGE]}")


def preferred_port(port: int) -> int:
    """``port`` when it is free on 127.0.0.1, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def run_script(name: str, *args: str) -> str:
    """Run an install script from ``scripts/`` and return the last line it printed."""
    done = subprocess.run(["bash", str(REPO / "scripts" / name), *args], capture_output=True, text=True,  # noqa: S603, S607
                          check=False)
    if done.returncode != 0:
        raise ServerError(f"scripts/{name} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


class ServerProcess:
    """One server. Subclasses give the command, the port and the readiness probe."""

    name = "server"
    start_timeout_s = 60.0

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        """The address it listens on: loopback, or the real node's pod gateway for pods to reach it."""
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir.mkdir(parents=True, exist_ok=True)

    # --- for subclasses ---
    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration before the first start."""

    def ready(self) -> bool:
        return port_open(self.port, self.host)

    def environment(self) -> dict[str, str] | None:
        """The process's environment (None: this one's)."""
        return None

    # --- lifecycle ---
    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self
        if port_open(self.port, self.host):
            raise ServerError(f"{self.name}: port {self.port} is already in use")
        self.prepare()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                list(self.command()), stdout=out, stderr=subprocess.STDOUT, cwd=self.data_dir,
                env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise ServerError(f"{self.name} did not become ready on port {self.port}:\n{tail}")
            time.sleep(0.2)
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; waits until the port is free."""
        if self.proc is None:
            return
        stop_pid(self.proc.pid, timeout_s)
        self.proc.wait()
        self.proc = None
        deadline = time.monotonic() + timeout_s
        while port_open(self.port, self.host) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def stop_pid(pid: int, timeout_s: float = 30.0) -> bool:
    """Stop the process group led by ``pid``, every member of it: SIGTERM, then SIGKILL. A member may outlive the
    leader (a server's forked child holding its listening socket), so the group is waited for, not the leader
    alone. False when it was not running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap the leader when it is our child
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
