"""The peer's connection to its relay: dial, greet, receive, send, and dial again.

Theory of operation. ``Connection.start`` runs one task that keeps a websocket to
``ws://HOST:PORT/gun`` up (``ws_url`` turns an ``http(s)://`` URL, with or without ``/gun``, into
that). A dial that fails is tried again after a backoff that doubles from ``reconnect_min`` up to
``reconnect_max`` (GunJS's pace); after ``max_retries`` failures in a row it gives up. A socket
that closes is dialled again after ``reconnect_min``.

On every connection, in this order (``_greet``), so that a reset issued while the peer was away
is applied before any queued write goes out:

1. ``{"dam": "hi"}`` (the relay's ``{"dam": "?"}`` is answered as it arrives, by the protocol);
2. ``session.catch_up()``: the peer reads the relay's reset records and acts on them;
3. a get for every soul or key the peer follows (``PeerProtocol.resubscriptions``);
4. the connection counts as ready (``wait_ready``), and ``session.flush()`` sends the outbox.

Meanwhile the receive loop hands every message of every frame (a JSON object or a batch of them;
``[]`` is a keepalive) to ``session.receive``, one at a time, in order; a message that fails is
logged and costs nothing else. When the socket drops, ``session.lost()`` ends what waited on it.
What is sent and what a message means is the protocol's (``protocol.PeerProtocol``) and the
peer's business; this module only moves text. ``relay_identity`` reads the relay's signing key
from ``http://HOST:PORT/-/identity``, the one other request a peer makes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..core import sea, wire
from .protocol import PeerProtocol

log = logging.getLogger("gunrelay.client")


@dataclass(frozen=True)
class Session:
    """What the connection asks of the peer it carries."""

    receive: Callable[[Any], Awaitable[None]]  # one message from the relay (whatever a frame held)
    catch_up: Callable[[], Awaitable[None]]  # on connect, before subscriptions and queued writes
    flush: Callable[[], Awaitable[None]]  # once ready: send what waits (the outbox)
    lost: Callable[[], None]  # the socket dropped: end every wait on it


def ws_url(url: str) -> str:
    """The relay's websocket URL: ``http(s)://`` becomes ``ws(s)://``, an empty path ``/gun``."""
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a relay URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/gun"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


async def relay_identity(url: str) -> str | None:
    """The relay's SEA pub from ``/-/identity`` next to its websocket ``url``, or None (a relay
    without one, such as the Node relay, or not reachable now)."""
    parts = urllib.parse.urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    address = f"{scheme}://{parts.netloc}/-/identity"

    def fetch() -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(address, timeout=3) as response:
            return json.loads(response.read())

    try:
        pub = (await asyncio.to_thread(fetch)).get("pub")
    except Exception as exc:  # noqa: BLE001 - any failure means "no identity here (now)"
        log.info("no relay identity at %s (%s): no resets to watch on this connection", address, exc)
        return None
    if isinstance(pub, str) and sea.user_space_pub("~" + pub) == pub:
        return pub
    return None


class Connection:
    def __init__(
        self,
        protocol: PeerProtocol,
        session: Session,
        *,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        max_retries: int | None = None,
    ):
        self.protocol = protocol
        self.session = session
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_retries = max_retries
        self.url: str | None = None
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()  # connected and greeted (the reset records checked)
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._greeting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._connected.is_set()

    def start(self, url: str) -> None:
        """Keep a connection to ``url`` (a relay URL, see ``ws_url``) up from now on."""
        self.url = ws_url(url)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def wait_ready(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Go offline until the next ``start``."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
        if self._ws is not None:
            await self._ws.close()
        if runner is not None:
            await asyncio.gather(runner, return_exceptions=True)

    async def close(self) -> None:
        """Go offline for good."""
        self._closing = True
        tasks = [t for t in (self._runner, self._greeting) if t is not None]
        for task in tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def send(self, text: str) -> bool:
        """Send one frame; False when there is no connection (or it just closed)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _run(self) -> None:
        assert self.url is not None
        failures = 0
        while not self._closing:
            try:
                ws = await connect(self.url, open_timeout=5, close_timeout=2, max_size=None, compression=None, proxy=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - refused, unreachable, bad handshake: try again later
                failures += 1
                if self.max_retries is not None and failures > self.max_retries:
                    log.warning("giving up on %s after %d attempts: %s", self.url, failures, exc)
                    return
                await asyncio.sleep(min(self.reconnect_max, self.reconnect_min * 2 ** min(failures, 16)))
                continue
            failures = 0
            await self._serve(ws)
            if not self._closing:
                await asyncio.sleep(self.reconnect_min)

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.protocol.opened()
        self._connected.set()
        self._greeting = asyncio.get_running_loop().create_task(self._greet())
        try:
            async for frame in ws:
                try:
                    messages = wire.parse_frame(frame)
                except ValueError as exc:
                    log.warning("unreadable frame from the relay: %s", exc)
                    continue
                for raw in messages:
                    try:
                        await self.session.receive(raw)
                    except Exception:
                        log.exception("failed to handle %.200r", raw)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._connected.clear()
            self._ready.clear()
            self._greeting.cancel()
            self.session.lost()

    async def _greet(self) -> None:
        try:
            await self.send(self.protocol.hi())
            await self.session.catch_up()
            for text in self.protocol.resubscriptions():
                await self.send(text)
        except Exception:
            log.exception("greeting the relay failed")
        finally:
            if self._ws is not None:
                self._ready.set()
        await self.session.flush()
