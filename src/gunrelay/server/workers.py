"""``gunrelay serve --workers N``: N relay processes on one port, a fleet on one PostgreSQL store.

Theory of operation. The parent serves nothing itself. It binds the port first with SO_REUSEPORT
(so that port 0 resolves to one port for all of them, and the port stays reserved while they run;
it never listens, so the kernel hands it no connection), then starts N children: ``python -m
gunrelay serve`` with the same options plus ``--port P --workers 1``, and ``WORKER_ENV`` set,
which makes each child bind its own listening socket on P with SO_REUSEPORT; the kernel spreads
new connections across them. The children share the data folder (the identity and the token,
which the parent creates before starting any, so they do not race to create them) and the store
(``server/fleet.py`` keeps them one relay).

Signals: SIGTERM or SIGINT to the parent is passed to each child by its PID; the parent waits for
them (``STOP_S`` at most, then SIGKILL by PID) and exits. A child that dies on its own is started
again, unless it died within ``START_GRACE_S`` of its start (a bad setting or an unreachable
database would fail every restart alike): then the parent stops the others and exits with an error.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

log = logging.getLogger("gunrelay.workers")

WORKER_ENV = "GUNRELAY_WORKER_OF"  # set in each child (the parent's pid): bind with SO_REUSEPORT
START_GRACE_S = 5.0
STOP_S = 10.0
TICK_S = 0.2


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) with SO_REUSEPORT on ``host:port``: the port every child binds."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Workers:
    def __init__(self, argv: list[str], count: int, port: int):
        self.argv = argv  # the ``serve`` command line the parent was given, after ``gunrelay``
        self.count = count
        self.port = port
        self.children: list[subprocess.Popen[bytes]] = []
        self.started: dict[int, float] = {}  # pid -> monotonic start
        self.stopping = False

    def _start_one(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, WORKER_ENV: str(os.getpid())}
        child = subprocess.Popen(
            [sys.executable, "-m", "gunrelay", *self.argv, "--port", str(self.port), "--workers", "1"], env=env, stdin=subprocess.DEVNULL
        )
        self.started[child.pid] = time.monotonic()
        return child

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        """Start the children, keep them running until told to stop; the exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        self.children = [self._start_one() for _ in range(self.count)]
        print(f"gunrelay: {self.count} worker processes on port {self.port} (pids {', '.join(str(c.pid) for c in self.children)})", flush=True)
        failure = 0
        while not self.stopping:
            time.sleep(TICK_S)
            for index, child in enumerate(self.children):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                if time.monotonic() - self.started.pop(child.pid, 0.0) < START_GRACE_S:
                    print(f"gunrelay: worker {child.pid} exited with {code} right after it started; stopping the others", flush=True)
                    failure = code or 1
                    self.stopping = True
                    break
                log.warning("worker %d exited with %s; starting another", child.pid, code)
                self.children[index] = self._start_one()
        self._stop_children()
        return failure

    def _stop_children(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        for child in self.children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=STOP_S)
