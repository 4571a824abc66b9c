"""The relay as a server: the engine's effects carried out over sockets, the store and timers.

Theory of operation. Every rule of GUN's relay protocol lives in ``core.engine`` (read its
docstring first): this module tells the engine what happened, with the time, and carries out
what it asks, in order:

- ``Send``: into the connection's outbox (``server.connection``), which batches what one turn of
  the loop produces into one frame and closes a connection that stops reading.
- ``Read`` / ``ReadWhenRoom``: ``store.read_page``, the result back to ``engine.page_read``; the
  next page of a get waits until the asker's outbox holds less than ``reads.OUTBOX_ROOM``.
- ``Merge``: ``store.merge`` (HAM against the stored state, durable when it resolves), the
  result back to ``engine.merged``; shutdown waits for every merge under way (``drain``).
- ``Defer``: a timer until the state clock reaches the field's state, then ``engine.due``.
- ``LookUp``: the write-block entries a certificate names, back to ``engine.looked_up``.
- ``AwaitPeers``: a timer, then ``engine.peers_silent`` (a get sent on to relay links).
- ``Drop``: close a link the mesh does not want (``server.mesh`` sees why and waits).
- ``RelayLinked``: every ``relay_link_listeners`` (``server.mesh_resets`` sends the link the
  reset records this relay holds, ``server.catchup`` asks it for its change stream).
- ``ReadChanges``: ``store.changes_since``, back to ``engine.changes_read``; ``CaughtUp``:
  ``on_caught_up`` (``server.catchup`` keeps the cursor and asks for the next page).

``watch``, when set (the reset control's), sees every batch of fields a merge accepted: how reset
records and acknowledgements from other relays of the mesh reach the control.
- ``Fenced`` and ``Failed``: the log.

Nothing here blocks: the store answers through futures. The fence is the reset control's; the
relay is given it read-only. The clock watch (``core.clockwatch``) notices steps of the wall clock
that would misplace a reset's watermark.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

from ..core import reads, wire
from ..core.clockwatch import ClockWatch
from ..core.engine import (
    CHANGES_PAGE,
    AwaitPeers,
    CaughtUp,
    Defer,
    Drop,
    Failed,
    Fenced,
    GetRead,
    Limits,
    LookUp,
    Merge,
    Now,
    PutJob,
    Read,
    ReadChanges,
    ReadWhenRoom,
    RelayEngine,
    RelayLinked,
    RelayStats,
    Send,
)
from ..core.fence import FenceView
from ..core.graph import Field
from ..core.lex import Lex
from ..core.link import Link
from ..core.reads import ReadPage, ReadQuery, Row
from ..storage.base import StorageFailure, Store
from .connection import AsgiSend, Connection, random_pid

log = logging.getLogger("gunrelay.relay")


def wall_clock_ms() -> float:
    return time.time() * 1000.0


# Seconds that only go forward and count a suspend (CLOCK_BOOTTIME, Linux), so that a VM or laptop
# waking up is not taken for a step of the wall clock (core.clockwatch); elsewhere the monotonic clock.
steady_s: Callable[[], float] = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic
)


class Relay:
    def __init__(
        self,
        store: Store,
        *,
        fence: FenceView | None = None,
        acknowledge: Callable[[Link, Any], str | None] | None = None,  # the reset control's; None: no resets
        limits: Limits | None = None,
        max_queue_bytes: int = 32 << 20,
        clock_ms: Callable[[], float] = wall_clock_ms,
        monotonic: Callable[[], float] = steady_s,
        clock_settle_s: float = 600.0,
        relay_pub: str = "",
    ):
        self.store = store
        self.clock_ms = clock_ms
        self.monotonic = monotonic
        self.max_queue_bytes = max_queue_bytes
        self.clock_watch = ClockWatch(clock_ms(), monotonic(), settle_s=clock_settle_s)
        self.engine = RelayEngine(
            fence if fence is not None else FenceView(), pid=random_pid(), new_id=wire.MessageIds(os.urandom(3).hex()), limits=limits,
            acknowledge=acknowledge, now=self.now(), relay_pub=relay_pub,
        )
        self.peers: dict[str, Connection] = {}
        self.watch: Callable[[list[Field]], None] | None = None  # sees what each merge accepted
        self.relay_link_listeners: list[Callable[[Link], None]] = []  # told when a link turns out to lead to a relay
        self.on_caught_up: Callable[[Link, int, bool], None] | None = None  # a page of a relay's change stream is durable
        self._pending_writes: set[asyncio.Future[Any]] = set()
        self._deferred: dict[int, asyncio.TimerHandle] = {}  # by id of the Defer effect

    def now(self) -> Now:
        return Now(self.clock_ms(), self.monotonic())

    @property
    def stats(self) -> RelayStats:
        return self.engine.stats

    @property
    def pid(self) -> str:
        return self.engine.pid

    @property
    def fence(self) -> FenceView:
        return self.engine.fence

    @property
    def fenced_writes(self) -> int:
        return self.engine.stats.fenced_writes

    # -- connections -------------------------------------------------------------------------

    def open_connection(self, send: AsgiSend, address: str) -> Connection:
        """A new websocket (``send``: the ASGI server's): its connection, registered and greeted."""
        connection = Connection(send, address, max_queue_bytes=self.max_queue_bytes, stats=self.engine.stats)
        self.connect(connection)
        return connection

    def connect(self, connection: Connection) -> None:
        self.peers[connection.id] = connection
        if connection.stats is None:
            connection.stats = self.engine.stats
        self.engine.connect(connection, self.now())
        self._carry_out()

    def disconnect(self, connection: Connection) -> None:
        connection.closed = True
        if self.peers.pop(connection.id, None) is not None:
            self.engine.disconnect(connection)

    def clients(self) -> list[Connection]:
        """The open connections that are not links to other relays: the peers a reset asks to
        acknowledge, and the addresses ``ban --connected`` means."""
        return [peer for peer in self.peers.values() if not peer.relay and not peer.closed]

    def subscription_count(self, connection: Link) -> int:
        return self.engine.subscriptions.count_of(connection)

    def check_clock(self) -> None:
        """Look for a step of the wall clock (the monitor calls this every few seconds)."""
        jump = self.clock_watch.observe(self.clock_ms(), self.monotonic())
        if jump is not None:
            log.warning(
                "the wall clock jumped %+.1f s; resets, rotations and TTL purges are held for %.0f s",
                jump.size_ms / 1000,
                self.clock_watch.settle_s,
            )

    def clock_hold(self, look_first: bool = True) -> str | None:
        """Why actions whose watermark is "now" must wait (the wall clock just jumped), or None;
        ``look_first`` looks at the clocks first, so a step since the monitor's last round counts too."""
        if look_first:
            self.check_clock()
        return self.clock_watch.held_because(self.monotonic())

    def keepalive(self) -> None:
        self.engine.keepalive(list(self.peers.values()))
        self._carry_out()

    # -- incoming ----------------------------------------------------------------------------

    def receive_binary(self, connection: Connection, size: int = 0) -> None:
        self.engine.receive_binary(connection, size)
        self._carry_out()

    def receive(self, connection: Connection, text: str) -> None:
        """Handle one text frame from ``connection``; never raises."""
        self.engine.receive(connection, text, Now(self.clock_ms(), self.monotonic()))
        self._carry_out()

    # -- the relay's own writes ------------------------------------------------------------

    def introduce(self, link: Link, fields: list[Field]) -> None:
        """Send stored ``fields`` to one relay link (the reset records it must know first)."""
        self.engine.introduce(link, fields, self.now())
        self._carry_out()

    async def publish(self, fields: list[Field]) -> list[Field]:
        """Write the relay's own fields (records it signed, legacy nodes): no peer checks, but
        durable before returning and pushed to subscribers like any accepted write."""
        accepted = await self.store.merge(fields)
        self.engine.published(accepted, self.now())
        self._carry_out()
        return accepted

    def shared(self, fields: list[Field]) -> None:
        """Fields another process of the fleet stored: to this process's subscribers only."""
        self.engine.shared(fields, self.now())
        self._carry_out()

    # -- effects ---------------------------------------------------------------------------

    def _carry_out(self) -> None:
        engine = self.engine
        enqueue = Connection.enqueue
        effects = engine.take()
        while effects:
            for effect in effects:
                if type(effect) is Send:  # by far the most frequent; every link here is a Connection
                    enqueue(effect.link, effect.text)  # type: ignore[arg-type]
                elif type(effect) is Merge:
                    self._merge(effect)
                elif type(effect) is Read:
                    self._read(effect.job)
                elif type(effect) is ReadWhenRoom:
                    self._read_when_room(effect.job)
                elif type(effect) is Defer:
                    self._defer(effect)
                elif type(effect) is LookUp:
                    self._look_up(effect)
                elif type(effect) is AwaitPeers:
                    asyncio.get_running_loop().call_later(effect.wait_s, self._peers_silent, effect.job)
                elif type(effect) is RelayLinked:
                    for listener in self.relay_link_listeners:
                        listener(effect.link)
                elif type(effect) is ReadChanges:
                    self.store.changes_since(effect.since, CHANGES_PAGE).add_done_callback(functools.partial(self._changes_read, effect))
                elif type(effect) is CaughtUp:
                    if self.on_caught_up is not None:
                        self.on_caught_up(effect.link, effect.cursor, effect.done)
                elif type(effect) is Drop:
                    log.info("closing %s (pid %s): %s", effect.link, effect.link.pid, effect.reason)
                    cast(Connection, effect.link).close(1000, effect.reason[:120])
                elif type(effect) is Fenced:
                    link = effect.link
                    log.info(
                        "fenced %d stale field(s) from peer %s at %s (pid %s), e.g. %r",
                        effect.count, link.id, link.address, link.pid, effect.example,
                    )
                elif type(effect) is Failed:
                    log.error("failed to handle a message from %s", effect.link, exc_info=effect.error)
            effects = engine.take()  # what carrying these out made the engine ask for

    def _read(self, job: GetRead) -> None:
        self.store.read_page(job.query).add_done_callback(functools.partial(self._page_read, job))

    def _page_read(self, job: GetRead, done: asyncio.Future[ReadPage]) -> None:
        page = None if done.exception() is not None else done.result()
        try:
            self.engine.page_read(job, page, self.now())
        except Exception:  # a bug must cost one get, never the reads queued behind it
            self.engine.stats.error("internal")
            log.exception("failed to answer a get from %s", job.link)
        self._carry_out()

    def _changes_read(self, effect: ReadChanges, done: asyncio.Future[Any]) -> None:
        if done.exception() is not None:
            self.engine.changes_read(effect, None, effect.since, False, self.now())
        else:
            page = done.result()
            rows = [(c.soul, c.key, c.value, c.state) for c in page.changes]
            self.engine.changes_read(effect, rows, page.cursor, len(rows) < CHANGES_PAGE, self.now())
        self._carry_out()

    def ask_changes(self, link: Link, since: int) -> None:
        """Ask relay ``link`` for a page of its change stream after ``since``."""
        self.engine.ask_changes(link, since, self.now())
        self._carry_out()

    def _peers_silent(self, job: GetRead) -> None:
        self.engine.peers_silent(job)
        self._carry_out()

    def _read_when_room(self, job: GetRead) -> None:
        connection = cast(Connection, job.link)
        if connection.queued_bytes < reads.OUTBOX_ROOM:
            self.engine.next_page(job)
        else:
            connection.when_drained(functools.partial(self._next_page, job))

    def _next_page(self, job: GetRead) -> None:
        self.engine.next_page(job)
        self._carry_out()

    def _merge(self, effect: Merge) -> None:
        future = self.store.merge(effect.fields)
        self._pending_writes.add(future)
        future.add_done_callback(functools.partial(self._merged, effect.job))

    def _merged(self, job: PutJob, done: asyncio.Future[list[Field]]) -> None:
        self._pending_writes.discard(done)
        exc = done.exception()
        if exc is None:
            accepted = done.result()
            self.engine.merged(job, accepted, self.now())
            if self.watch is not None and accepted:
                self.watch(accepted)
        else:
            why = str(exc) if isinstance(exc, StorageFailure) else type(exc).__name__
            self.engine.merged(job, None, self.now(), why)
        self._carry_out()

    def _defer(self, effect: Defer) -> None:
        delay_s = (effect.at_ms - self.clock_ms()) / 1000.0
        self._deferred[id(effect)] = asyncio.get_running_loop().call_later(delay_s, self._due, effect)

    def _due(self, effect: Defer) -> None:
        del self._deferred[id(effect)]
        self.engine.due(effect.job, effect.fields, self.now())
        self._carry_out()

    def _look_up(self, effect: LookUp) -> None:
        lookups = [self.store.read(ReadQuery(soul=soul, key=Lex(exact=writer))) for soul, writer in effect.wanted]
        asyncio.gather(*lookups).add_done_callback(functools.partial(self._looked_up, effect))

    def _looked_up(self, effect: LookUp, done: asyncio.Future[list[dict[str, list[Row]]]]) -> None:
        found = None if done.exception() is not None else done.result()
        self.engine.looked_up(effect.job, effect, found, self.now())
        self._carry_out()

    # -- shutdown --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait for every write already submitted to storage (deferred writes not yet due are dropped unacked)."""
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()
        if self._pending_writes:
            await asyncio.gather(*list(self._pending_writes), return_exceptions=True)
