"""uvicorn's sans-I/O websocket protocol, minus what an open GUN connection does not need, and
quiet about what a peer sends.

A relay holds thousands of mostly idle sockets, so per-connection memory is a product figure
(``bench/run.py --scenarios memory``: RSS per idle connection). The stock protocol keeps, for
each connection's whole life, things only its first moments or a busy socket need. Here, with
the bytes per connection they cost (tracemalloc, 1,000 idle connections):

- the upgrade request and response with all their headers: let go once the 101 is written,
  the request also by websockets' handshake parser, which holds it as a local variable (about
  2.5 KB);
- an ``asyncio.Queue`` (four deques) for what the app receives: an ``Inbox`` that holds a future
  while the app waits and a deque only while messages wait (about 3.4 KB), and ``receive`` a
  plain function returning that future, so no coroutine frame of its own (about 0.2 KB);
- an ``asyncio.Event`` (a deque) for ``writable``: a ``Gate`` with waiters only while the
  transport's buffer is full (about 0.8 KB);
- an instance dict of over 30 keys: slots (about 1.3 KB);
- a timer of its own for the next keepalive ping: one ``PingClock`` per loop (about 0.5 KB);
- the last frame's payload, kept by the frame parser until the next frame: dropped once handed
  over (its size; a peer that sent one big frame and went quiet keeps nothing);
- a UUID websockets makes for its own logs, which this protocol does not write (about 0.1 KB).

No proxy-headers middleware wraps the app (uvicorn's would stay on every open socket's stack,
about 0.5 KB): the connection guard (``handshake``) names the client a trusted proxy forwards,
once, as the upgrade request is read.

A close asked for while the socket's buffers are full (the peer stopped reading: the relay drops
it, see ``peer.py``) aborts the connection at once: the stock protocol would wait for the buffers
to drain before sending the close frame, which for a peer that never reads is forever, and the
connection and its buffers would stay until the ping timeout.

Nothing a peer sends may put a traceback in the log (a stranger could fill it). A text frame that
is not UTF-8 is the peer's error: one INFO line, the socket closed with 1007 (the relay counts it
as ``errors{kind="invalid_utf8"}``), also when the peer's own close frame came in the same read,
where the stock protocol's second close raised from ``data_received``. Anything else that escapes
the protocol while reading a peer's bytes is logged as one WARNING line (the traceback only at
DEBUG) and the connection is aborted.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import weakref
from collections import deque
from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

log = logging.getLogger("gunrelay.wsprotocol")


class Inbox:
    """What the protocol hands the app, in order: the part of ``asyncio.Queue`` the protocol uses
    (``put_nowait``, ``empty``), for one reader. An ``asyncio.Queue`` costs four deques (about
    3 KB) per connection; this costs nothing while empty, a future while the app waits and a deque
    only while messages wait for the app."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[Any] | None = None

    def put_nowait(self, item: Any) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # the app is waiting: it gets the item as it wakes
                waiter.set_result(item)
                return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> Any:
        items = self._items
        item = items.popleft()  # type: ignore[union-attr]
        if not items:
            self._items = None
        return item

    def wait(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """A future for the next item (call only when empty)."""
        self._waiter = waiter = loop.create_future()
        return waiter


class Gate:
    """The part of ``asyncio.Event`` the protocol uses for ``writable`` (``is_set``, ``set``,
    ``clear``, ``wait``), without a deque per connection: a list of waiters exists only while
    the transport's buffer is full and someone waits for it to drain."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        if self._open:
            return
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class Ping:
    """A connection's next keepalive ping, due at ``when`` (loop time); ``cancel`` as a timer's."""

    __slots__ = ("when", "protocol")

    def __init__(self, when: float, protocol: Any):
        self.when = when
        self.protocol = protocol

    def __lt__(self, other: Ping) -> bool:
        return self.when < other.when

    def cancel(self) -> None:
        self.protocol = None


class PingClock:
    """The keepalive pings of every connection on a loop, from one timer.

    The stock protocol gives each connection its own ``call_later`` for its next ping: a timer
    handle, a libuv timer and a context, about 600 bytes per connection for its whole life. Here
    the next pings wait in a heap and one loop timer, set for the earliest, sends those due, at
    the times the stock timers would have fired. A cancelled ping (a closed connection) lets go
    of its connection at once and leaves the heap when its time comes. The clock holds its loop
    weakly: the loop's timer holds the clock while pings are due."""

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PingClock] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = weakref.ref(loop)
        self.due: list[Ping] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> PingClock:
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        return clock

    def schedule(self, protocol: Any, delay: float) -> Ping:
        """Call ``protocol.send_keepalive_ping()`` in ``delay`` seconds, unless cancelled."""
        loop = self.loop()
        assert loop is not None
        ping = Ping(loop.time() + delay, protocol)
        heapq.heappush(self.due, ping)
        if self.timer is None or ping.when < self.timer_at:
            self._arm(loop, ping.when)
        return ping

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = when
        self.timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self.timer = None
        loop = self.loop()
        if loop is None:  # pragma: no cover - a loop runs its own timers
            return
        due = self.due
        now = loop.time() + 0.001  # the loop's timers are in milliseconds
        try:
            while due and due[0].when <= now:
                ping = heapq.heappop(due)
                protocol = ping.protocol
                if protocol is None:
                    continue  # cancelled
                ping.protocol = None
                try:
                    protocol.send_keepalive_ping()
                except Exception as exc:  # as a failing timer callback: reported, the others go on
                    loop.call_exception_handler(
                        {"message": "Exception sending a keepalive ping", "exception": exc, "protocol": protocol}
                    )
        finally:
            if due and self.timer is None:
                self._arm(loop, due[0].when)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    # Every attribute the stock protocol sets, in slots: its instance dict (over 30 keys, so not
    # a shared-key dict) costs about 1.5 KB per connection, the slots 8 bytes each. An attribute a
    # later uvicorn adds lands in a dict again: test_wsprotocol checks there is none.
    __slots__ = (
        "app", "app_state", "asgi_version", "client", "close_sent", "close_timeout", "close_timer", "config", "conn",
        "connections", "curr_msg_data_type", "default_headers", "disconnected", "frames", "handshake_complete",
        "handshake_initiated", "initial_response", "last_ping_rtt", "logger", "loop", "pending_ping_payload",
        "ping_interval", "ping_sent_at", "ping_timeout", "ping_timer", "pong_timer", "queue", "read_paused", "request",
        "response", "root_path", "scheme", "scope", "server", "tasks", "transport", "writable",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]
        self.conn.id = None  # type: ignore[assignment]  # a UUID for websockets' own logs, which this protocol never writes

    def start_keepalive(self) -> None:
        # called right after the 101 response is written: the handshake objects are done with
        shed_upgrade_request(self.conn, self.request)
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
        super().start_keepalive()

    def schedule_ping(self) -> None:
        # as the stock protocol, with the clock shared by all connections instead of a timer each
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self.ping_timer = PingClock.of(self.loop).schedule(self, delay)  # type: ignore[assignment]

    def receive(self) -> Awaitable[Any]:  # type: ignore[override]
        # A plain function returning a future, not a coroutine: no frame of its own on the stack
        # of every connection waiting for its next message. Reading, paused when a message is
        # handed over, resumes once the app has taken everything (as the stock protocol does).
        inbox: Inbox = self.queue  # type: ignore[assignment]
        if inbox.empty():
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            return inbox.wait(self.loop)
        ready = self.loop.create_future()
        ready.set_result(inbox.get_nowait())
        if self.read_paused and inbox.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return ready

    # the frame parser keeps the last frame it read until the next one: not its payload
    def handle_text(self, event: Frame) -> None:
        super().handle_text(event)
        event.data = b""

    def handle_bytes(self, event: Frame) -> None:
        super().handle_bytes(event)
        event.data = b""

    def handle_cont(self, event: Frame) -> None:
        super().handle_cont(event)
        event.data = b""

    async def send(self, message: Any) -> None:
        if message["type"] == "websocket.close" and not self.writable.is_set() and not self.disconnected:
            self.transport.abort()  # connection_lost follows: the app hears websocket.disconnect
            return
        await super().send(message)

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except Exception as exc:  # a peer's bytes must never become a traceback in the log
            log.warning("closed the connection from %s after a protocol error: %s: %s", self._who(), type(exc).__name__, exc)
            log.debug("protocol error details", exc_info=True)
            self._hang_up(1002)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            if log.isEnabledFor(logging.INFO):
                log.info("closed the connection from %s: a text frame was not UTF-8 (1007)", self._who())
            self._hang_up(1007)
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _hang_up(self, code: int) -> None:
        """Tell the app the connection is over (``code``), send a close frame if the connection
        is still open, and close the transport."""
        if self.disconnected or self.close_sent:
            if not self.transport.is_closing():
                self.transport.abort()
            return
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": ""})
        try:
            if self.conn.state is State.OPEN:
                self.conn.send_close(code)
            output = self.conn.data_to_send()
            self.transport.write(b"".join(output))
        except Exception:
            self.transport.abort()
            return
        self.transport.close()

    def _who(self) -> str:
        return "%s:%d" % self.client if self.client else "?"


_SERVER_PARSE = ServerProtocol.parse.__code__
_FRAME_PARSE = Protocol.parse.__code__
_AT_EOF = StreamReader.at_eof.__code__


def shed_upgrade_request(conn: ServerProtocol, request: Request | None) -> None:
    """Let go of the upgrade request once the connection is open.

    websockets' server parser is a generator that keeps the request (and all its headers) as a
    local variable for the connection's life while it delegates to the frame parser. Waiting
    between frames, as it is when the upgrade is answered, it is swapped for a fresh frame parser
    in the same state. Otherwise (in the middle of a frame, or another websockets) the request's
    headers are emptied, the most of it."""
    outer = conn.parser
    inner = getattr(outer, "gi_yieldfrom", None)
    waiting = getattr(inner, "gi_yieldfrom", None)
    if (
        conn.state is State.OPEN
        and getattr(outer, "gi_code", None) is _SERVER_PARSE
        and getattr(inner, "gi_code", None) is _FRAME_PARSE
        and getattr(waiting, "gi_code", None) is _AT_EOF
        and not conn.reader.buffer
    ):
        conn.parser = Protocol.parse(conn)
        next(conn.parser)  # runs to where the old one waits: for the next frame's first bytes
        outer.close()
    elif request is not None:
        request.headers.clear()
