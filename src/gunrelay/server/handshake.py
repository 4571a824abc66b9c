"""Every TCP connection from the moment it is accepted until it has said what it wants.

A stranger can open a socket and send its HTTP request (or websocket upgrade) one byte a second.
uvicorn gives such a connection no deadline and counts it nowhere, so one address could hold
file descriptors until the relay refuses everyone. Here:

- Each accepted connection counts against the connection limits (``core.limits``) at once: the
  total (clamped below the process's descriptor limit, ``descriptor_budget``) and its address's.
  Over a limit it is refused on the spot with a short HTTP 503 and counted in ``/metrics``
  (``refused{reason=...}``). A plain HTTP request stops counting once its headers are in (it is
  then served and bounded by uvicorn's keep-alive timeout); a websocket keeps counting until it
  closes, so open websockets and half-sent requests share one budget.
- Each connection has ``deadline_s`` to finish its request line and headers (and, for a
  websocket, the upgrade: the 101 sent). Past it the socket is aborted and counted
  (``refused{reason="handshake_timeout"}``). A kept-alive connection gets the same deadline for
  each further request.

- Behind a reverse proxy the TCP peer is the proxy. Once a request's headers are in, a trusted
  proxy's ``X-Forwarded-For`` / ``Forwarded`` name the client (``core.forwarded``, once per
  request or upgrade, never per frame): the scope's ``client`` (and ``scheme``) become the
  client's, so bans, the peer list, privacy labels, the audit log and login lockouts all see it,
  and a websocket's count moves from the proxy's address to the client's (``Handshake.move``):
  over the client's limit it is refused with the same 503. The total is counted at accept and
  does not move.

The guard is handed to uvicorn as protocol classes (``protocols``): an HTTP protocol that admits
and times connections, and the websocket protocol (``wsprotocol``) that takes the count and the
deadline over when the connection upgrades.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.datastructures import Headers
from websockets.http11 import Request

from ..core.forwarded import Origin, ProxyHeaders, TrustedProxies, resolve
from ..core.limits import ConnectionLimits

log = logging.getLogger("gunrelay.handshake")

# descriptors kept for what is not a connection: the store's files, logs, snapshots, pipes
RESERVED_DESCRIPTORS = 64
# refused sockets kept open for a moment so the 503 is read before the close, while there is
# room below the total (beyond: closed at once)
MAX_LINGERING = 64
LINGER_S = 1.0

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def descriptor_budget(wanted: int) -> int:
    """How many connections the process can hold open: ``wanted`` (0: no limit of its own), but
    never past the descriptor limit less a reserve. The soft limit is raised to the hard one first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    ceiling = max(soft - RESERVED_DESCRIPTORS, 1)
    return ceiling if wanted == 0 or wanted > ceiling else wanted


class ConnectionGuard:
    """The connection limits and the handshake deadline, shared by every protocol instance."""

    def __init__(
        self,
        limits: ConnectionLimits,
        refused: Callable[[str], None],
        deadline_s: float = 10.0,
        trusted: TrustedProxies = TrustedProxies(),
    ):
        self.limits = limits
        self.refused = refused  # counts a refusal by its reason (the relay's stats)
        self.deadline_s = deadline_s
        self.trusted = trusted  # proxies whose forwarding headers name the client
        self.lingering = 0

    def origin(self, client: tuple[str, int] | None, headers: ProxyHeaders) -> Origin | None:
        """The client a trusted proxy ``client`` forwards, or None (keep ``client``)."""
        if client is None or not self.trusted.networks:
            return None
        return resolve(client[0], headers, self.trusted)

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; or why it is refused (counted), or None."""
        reason = self.limits.refuse(address)
        if reason is not None:
            self.refused(reason)
            return reason
        self.limits.opened(address)
        return None

    def release(self, address: str) -> None:
        self.limits.closed(address)

    def refuse(self, transport: asyncio.Transport, reason: str) -> None:
        """Answer 503 and close; the socket lingers a moment (bounded) so the answer is read
        before the close rather than lost to a reset."""
        text = f"Too many connections ({reason}); try again later.\n".encode()
        try:
            transport.write(_REFUSAL % (len(text), text))
        except Exception:
            transport.abort()
            return
        limits = self.limits
        if self.lingering >= MAX_LINGERING or (limits.total and limits.open + self.lingering >= limits.total):
            transport.close()  # no spare room to linger in: a reset may overtake the answer
            return
        self.lingering += 1
        loop = asyncio.get_running_loop()

        def done() -> None:
            self.lingering -= 1
            transport.abort()

        try:
            transport.write_eof()
        except Exception:
            pass
        loop.call_later(LINGER_S, done)

    def expired(self, transport: asyncio.Transport) -> None:
        if not transport.is_closing():
            self.refused("handshake_timeout")
            transport.abort()


class Handshake:
    """One connection's place in the guard: its counted address and its deadline timer. It moves
    from the HTTP protocol to the websocket protocol when the connection upgrades."""

    __slots__ = ("guard", "address", "timer")

    def __init__(self, guard: ConnectionGuard, address: str | None):
        self.guard = guard
        self.address = address  # counted against the limits while not None
        self.timer: asyncio.TimerHandle | None = None

    def arm(self, transport: asyncio.Transport) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.guard.deadline_s, self.guard.expired, transport)

    def done(self) -> None:
        """The request (or the upgrade) is complete in time."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def release(self) -> None:
        self.done()
        if self.address is not None:
            self.guard.release(self.address)
            self.address = None

    def move(self, address: str) -> str | None:
        """Count the connection under ``address`` (the client a proxy forwards) instead: why that
        is refused (counted, and the connection no longer counts), or None."""
        if address == self.address:
            return None
        if self.address is not None:
            self.guard.release(self.address)
            self.address = None
        reason = self.guard.admit(address)
        if reason is None:
            self.address = address
        return reason


def _websocket_proxy_headers(headers: Headers) -> ProxyHeaders:
    return ProxyHeaders(
        tuple(headers.get_all("X-Forwarded-For")), tuple(headers.get_all("X-Forwarded-Proto")), tuple(headers.get_all("Forwarded"))
    )


def _scheme(secure: bool | None, websocket: bool, otherwise: Any) -> Any:
    """The scope's scheme as the proxy reports the client's (``otherwise``: as the socket has it)."""
    if secure is None:
        return otherwise
    if websocket:
        return "wss" if secure else "ws"
    return "https" if secure else "http"


def protocols(guard: ConnectionGuard) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """uvicorn's ``http`` and ``ws`` protocol classes, bound to ``guard``."""
    from .wsprotocol import LeanWebSocketProtocol

    class GuardedHttpProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else "?"
            reason = guard.admit(address)
            self.handshake = Handshake(guard, None if reason is not None else address)
            self.refused = reason is not None
            if self.refused:
                guard.refuse(transport, reason)  # type: ignore[arg-type]
                return
            self.handshake.arm(transport)

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return  # the answer is sent; what it asked no longer matters
            try:
                super().data_received(data)
            except Exception as exc:  # a peer's bytes must never become a traceback in the log
                log.warning("closed the connection from %s after a protocol error: %s: %s", self.client, type(exc).__name__, exc)
                log.debug("protocol error details", exc_info=True)
                self.transport.abort()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.handshake.arm(self.transport)  # a further request on a kept-alive connection

        def on_headers_complete(self) -> None:
            if not (self.parser.should_upgrade() and self._should_upgrade()):
                self.handshake.release()  # a plain request: in time, and no longer half-open
                # (an upgrade is re-read by the websocket protocol, which names its client there)
                origin = guard.origin(self.client, ProxyHeaders.from_asgi(self.headers))
                if origin is not None:
                    self.scope["client"] = (origin.address, origin.port)
                    self.scope["scheme"] = _scheme(origin.secure, False, self.scope["scheme"])
            super().on_headers_complete()

        def handle_websocket_upgrade(self) -> None:
            self.handshake_handover = self.handshake  # the websocket protocol takes it (connection_made)
            self.handshake = Handshake(guard, None)
            super().handle_websocket_upgrade()

        def connection_lost(self, exc: Exception | None) -> None:
            self.handshake.release()
            super().connection_lost(exc)

    class GuardedWebSocketProtocol(LeanWebSocketProtocol):
        __slots__ = ("handshake",)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            upgraded_from = transport.get_protocol()  # still the HTTP protocol at this point
            self.handshake = getattr(upgraded_from, "handshake_handover", None) or Handshake(guard, None)

        def handle_connect(self, event: Request) -> None:
            origin = guard.origin(self.client, _websocket_proxy_headers(event.headers))
            if origin is not None:
                self.client = (origin.address, origin.port)
                self.scheme = _scheme(origin.secure, True, self.scheme)
                reason = self.handshake.move(origin.address)
                if reason is not None:
                    self.refuse_upgrade(reason)
                    return
            super().handle_connect(event)

        def refuse_upgrade(self, reason: str) -> None:
            """503, as a refusal at accept, for a client over its limit behind a proxy."""
            self.handshake.done()
            self.handshake_complete = True
            self.close_sent = True
            response = self.conn.reject(503, f"Too many connections ({reason}); try again later.\n")
            self.conn.send_response(response)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

        def start_keepalive(self) -> None:
            self.handshake.done()  # the 101 is written: the upgrade finished in time
            super().start_keepalive()

        def connection_lost(self, exc: Exception | None) -> None:
            self.handshake.release()
            super().connection_lost(exc)

    return GuardedHttpProtocol, GuardedWebSocketProtocol
