"""The links this relay dials: every ``--peer`` kept up, speaking GUN's wire protocol.

Theory of operation. One ``PeerLink`` per URL runs one task: dial (the ``websockets`` asyncio
client), hand the open socket to the relay as a ``Connection`` marked ``dialled`` (so the engine
treats it as a relay link: see the mesh rules in ``core.engine``), pump its frames into
``Relay.receive`` until it closes, then wait and dial again. The wait doubles from
``FIRST_WAIT_S`` to ``LONGEST_WAIT_S`` and is drawn at random between half and all of that
(jitter), so relays restarted together do not redial in step; a link that stayed up for
``STEADY_S`` starts again from the shortest wait.

The peer may be a gunrelay or a stock GunJS relay: nothing here depends on which. What arrives
over a link goes through the same engine as a client's frames (validation, rates, HAM, SEA, the
fence); what the relay sends a slow peer is bounded by the connection's outbox like a client's.
Dialling, reading and writing run in the link's own task, so an unreachable or slow peer never
holds up the relay's clients.

A relay that obeys others' resets (``--trust-relay``) and dials peers does not serve its clients
until it is in step with them (``MeshSync``): until every dialled link is up and has been read to
the end of its change stream once (which brings the resets issued meanwhile: their records are in
the issuer's stream), and every reset so learned is installed; or until ``--mesh-sync-wait-s``
passed, or the link turned out to be a GunJS relay (no stream), or could not be reached at all.
Meanwhile ``/health`` answers 503 "syncing" and client websockets are refused (a GunJS client
retries); links from relays of the mesh (``MESH_HEADER`` on the upgrade) are let in, since that
is how relays that dial each other get in step. So a relay that was down during a reset fences
before it serves a single stale field.

The engine drops a link that leads back to this relay (its pid is ours: not dialled again) or a
second link to a relay already linked (two relays that dial each other keep one link, and either
end may be the one that notices first; the dialler whose link lost, told so by this relay's engine
or by the peer's close reason, waits until the other link is gone, then dials again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .catchup import StreamCatchUp
from .connection import Connection
from .relay import Relay

log = logging.getLogger("gunrelay.mesh")

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 30.0
STEADY_S = 60.0  # up this long: the next failure waits the shortest time again
OPEN_TIMEOUT_S = 10.0
COVERED_CHECK_S = 2.0  # how often a duplicate link looks whether the other one is gone
GUNJS_RELAY_AFTER_S = 2.0  # a link up this long whose peer never named itself is a GunJS relay (it keeps no stream)
MESH_HEADER = "x-gunrelay-mesh"  # on the websocket upgrade of a link a gunrelay dials

SELF = "a link to this relay itself"  # the engine's reasons for dropping a relay link (core.engine)
SECOND = "a second link to relay"


class PeerLink:
    """One ``--peer``: its state for the operator, and the task that keeps it up."""

    def __init__(
        self, relay: Relay, url: str, catch_up: StreamCatchUp, *, max_frame_bytes: int, chance: Callable[[], float] = random.random,
    ):
        self.relay = relay
        self.catch_up = catch_up
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.address = parts.hostname or "?"
        self.max_size = max(2 * max_frame_bytes, 1 << 20)
        self.chance = chance
        self.state = "down"  # down, connecting, up, covered (another link to that relay), self (this relay)
        self.since = time.time()
        self.pid: str | None = None
        self.last_error = ""
        self.failures = 0  # in a row, since the link was last steady
        self.dials_failed = 0  # since start (for /metrics)
        self.connection: Connection | None = None
        self.up_since = 0.0  # time.monotonic() when the current link came up
        self._socket: ClientConnection | None = None
        self._dropped_because = ""

    def report(self) -> dict[str, Any]:
        connection = self.connection
        return {
            "url": self.url,
            "state": self.state,
            "since": self.since,
            "pid": self.pid,
            "relay": connection.relay_pub if connection is not None else None,
            "stream": self.catch_up.report(connection.relay_pub if connection is not None else None),
            "last_error": self.last_error,
            "failures": self.failures,
            "messages_in": connection.messages_in if connection is not None else 0,
            "messages_out": connection.messages_out if connection is not None else 0,
        }

    def _enter(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    def next_wait(self) -> float:
        """Seconds until the next dial: doubling with each failure, capped, drawn at random between half and all of it."""
        longest = min(LONGEST_WAIT_S, FIRST_WAIT_S * (2 ** min(self.failures, 16)))
        return longest * (0.5 + 0.5 * self.chance())

    async def run(self) -> None:
        while True:
            self._enter("connecting")
            started = time.monotonic()
            try:
                await self._visit()
            except (OSError, InvalidURI, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                self.last_error = _describe(exc)
            if self._dropped_because.startswith(SELF):
                self._enter("self")
                log.warning("peer %s is this relay itself: not dialled again", self.url)
                return
            if self._dropped_because.startswith(SECOND):
                self._enter("covered")
                await self._while_covered()
                self.failures = 0
                continue
            self.failures = 0 if time.monotonic() - started >= STEADY_S else self.failures + 1
            self.dials_failed += 1
            self._enter("down")
            await asyncio.sleep(self.next_wait())

    async def _visit(self) -> None:
        """Dial once, and pump frames until the link closes."""
        self._dropped_because = ""
        async with connect(
            self.url, max_size=self.max_size, open_timeout=OPEN_TIMEOUT_S, compression=None, user_agent_header="gunrelay",
            additional_headers={MESH_HEADER: "1"},
        ) as socket:
            self._socket = socket
            relay = self.relay
            connection = Connection(self._send, self.address, max_queue_bytes=relay.max_queue_bytes, stats=relay.stats, dialled=True)
            self.connection = connection
            relay.connect(connection)
            self.up_since = time.monotonic()
            self._enter("up")
            self.last_error = ""
            log.info("linked to peer %s", self.url)
            try:
                async for message in socket:
                    if type(message) is str:
                        relay.receive(connection, message)
                    else:
                        relay.receive_binary(connection, len(message))
                    if connection.pid is not None:
                        self.pid = connection.pid
            finally:
                relay.disconnect(connection)
                self._socket = None
                code, reason = socket.close_code, socket.close_reason or ""
                if not self._dropped_because:
                    self.last_error = f"closed ({code} {reason})".strip()
                    if reason.startswith(SECOND):  # the peer keeps the link it dialled to us instead
                        self._dropped_because = reason
                log.info("link to peer %s closed: %s", self.url, self._dropped_because or self.last_error)

    async def _send(self, event: dict[str, Any]) -> None:
        """The connection's ASGI-style send, over the client socket."""
        socket = self._socket
        if socket is None:
            raise ConnectionError("the link is closed")
        if event["type"] == "websocket.send":
            await socket.send(event["text"])
        else:
            self._dropped_because = event.get("reason", "")
            self.last_error = self._dropped_because
            await socket.close(event.get("code", 1000), event.get("reason", ""))

    async def _while_covered(self) -> None:
        """Another link joins this relay to that peer: wait until it is gone."""
        pid = self.pid
        while any(link.pid == pid and not link.closed for link in self.relay.engine.relay_links):
            await asyncio.sleep(COVERED_CHECK_S)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


class Mesh:
    """Every ``--peer`` of this relay."""

    def __init__(self, relay: Relay, urls: tuple[str, ...], catch_up: StreamCatchUp, *, max_frame_bytes: int):
        self.catch_up = catch_up
        self.links = [PeerLink(relay, url, catch_up, max_frame_bytes=max_frame_bytes) for url in urls]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(link.run(), name=f"peer {link.url}") for link in self.links]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def report(self) -> list[dict[str, Any]]:
        return [link.report() for link in self.links]


class MeshSync:
    """Whether this relay is in step with the relays it dials (module docstring), with the reason
    while it is not. Once in step (or given up waiting) it stays so until the relay restarts."""

    def __init__(
        self, mesh: Mesh, pending_resets: Callable[[], int], *, enabled: bool, wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.mesh = mesh
        self.pending_resets = pending_resets  # resets learned from the mesh still being installed
        self.clock = clock
        self.wait_s = wait_s
        self.deadline = clock() + wait_s
        self.done = not enabled or not mesh.links

    def begin(self) -> None:
        """The wait starts now (the mesh starts once the store is open, which may take a while)."""
        self.deadline = self.clock() + self.wait_s

    def waiting_for(self) -> str | None:
        if self.done:
            return None
        if self.clock() >= self.deadline:
            self.done = True
            log.warning("serving clients without being in step with every peer: waited %s", self._reason())
            return None
        reason = self._reason()
        if reason is None:
            self.done = True
            log.info("in step with the mesh: serving clients")
        return reason

    def _reason(self) -> str | None:
        now = self.clock()
        for link in self.mesh.links:
            if link.state == "self" or (link.state != "up" and link.dials_failed > 0):
                continue  # itself, or not reachable now: nothing to wait for
            connection = link.connection
            if link.state != "up" or connection is None:
                return f"the link to {link.url} is not up yet"
            pub = connection.relay_pub
            if pub is None:
                if now - link.up_since >= GUNJS_RELAY_AFTER_S:
                    continue  # a GunJS relay: no stream, no resets of its own
                return f"{link.url} has not said who it is yet"
            if not self.mesh.catch_up.caught_up.get(pub):
                return f"reading {link.url}'s changes"
        if self.pending_resets():
            return "installing resets learned from the mesh"
        return None
