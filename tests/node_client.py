"""One real GunJS client in a Node process (``tests/interop/js/bound_client.js``), driven line by
line: ``ask`` sends a command and waits (bounded) for its answer, ``wait_event`` waits (bounded)
for an event such as ``open`` or ``refused``. Its socket may leave from a chosen loopback address
(``local_address``) and carry extra headers; a ``wss://`` relay is trusted through the test CA
(``NODE_EXTRA_CA_CERTS``), never by turning certificate checks off. ``close`` kills the process
by its PID."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "tests" / "interop" / "js" / "bound_client.js"


class NodeClient:
    def __init__(self, peer: str, ca: Path | None = None, local_address: str | None = None,
                 headers: dict[str, str] | None = None, deadline_s: float = 60):
        command: dict[str, Any] = {"peer": peer, "deadline": int(deadline_s * 1000)}
        if local_address:
            command["localAddress"] = local_address
        if headers:
            command["headers"] = headers
        env = dict(os.environ)
        if ca is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(ca)
        self.proc = subprocess.Popen(
            ["node", str(CLIENT), json.dumps(command)], cwd=str(REPO), env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue
        self.lines.put(None)

    def _next(self, deadline: float) -> dict[str, Any] | None:
        try:
            message = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if message is None:
            raise AssertionError(f"the GunJS client exited: {self.stderr()}")
        return message

    def ask(self, op: str, timeout_s: float = 15, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        wanted = self.next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": wanted, "op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._next(deadline)
            if message is None:
                break
            if message.get("id") == wanted:
                return message
            self.events.append(message)
        raise AssertionError(f"no answer to {op} in {timeout_s} s; events {self.events}")

    def wait_event(self, matches: Callable[[dict[str, Any]], bool], timeout_s: float) -> dict[str, Any] | None:
        """The first event (seen before or arriving within ``timeout_s``) that ``matches``, or None."""
        for event in self.events:
            if matches(event):
                return event
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._next(deadline)
            if message is None:
                break
            self.events.append(message)
            if matches(message):
                return message
        return None

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
