"""Builds the ASGI application: the GUN websocket, health, GunJS's bundles, and the store's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import platform
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import __version__
from .config import Settings
from .admin import api, console, login, observe
from .server.audit import Audit
from .admin.auth import MAX_SESSIONS, ConsoleAuth
from .admin.gate import Gate
from .admin.metrics import Metrics, RelayCollector
from .core.engine import Limits
from .core.errors import GunrelayError
from .core.fence import Protected
from .core.lockout import LoginThrottle
from .core.privacy import Anonymizer, Privacy
from .server.access import Access
from .server.console_sessions import SharedSessions
from .server.control import ResetControl
from .server.datalock import DataLock
from .server.fleet import Fleet
from .server.workers import WORKER_ENV, Workers, reserve_port  # for `gunrelay serve --workers N` (cli imports app, not server)
from .server.expiry import Expiry
from .server.snapshots import Snapshots
from .server.identity import admin_token, load_or_create_identity
from .server.gunsocket import GunSocket
from .server.logbook import LogBook
from .server.catchup import StreamCatchUp
from .server.mesh import MESH_HEADER, Mesh, MeshSync
from .server.mesh_resets import MeshResets
from .server.monitor import Monitor
from .server.relay import Relay
from .server.static import CORS, GunFiles, demo_page, find_gun_dir, plugin_js
from .server.interchange import Interchange
from .server.radata import RadFolder  # for the CLI's `import radata` (cli imports app, not server)
from .server.migrate import migrate as migrate_stores  # for the CLI's `migrate` (likewise)
from .server.handshake import ConnectionGuard, descriptor_budget, protocols
from .server.identity import TOKEN_FILE, register_local_relay, token_file_for_port
from .core.forwarded import TrustedProxies
from .core.limits import ConnectionLimits
from .storage.base import Store
from .storage.memory import MemoryStore
from .storage.postgres import PostgresStore, StoreUnreachable
from .storage.sqlite import SQLiteStore

log = logging.getLogger("gunrelay")

START_RETRY_FIRST_S = 0.5  # a store unreachable at start is tried again after this, then twice as long each time
START_RETRY_MAX_S = 10.0


def make_store(config: Settings, protected: Protected) -> Store:
    if config.storage == "memory":
        return MemoryStore()
    if config.storage == "postgres":
        return PostgresStore(config.postgres_url, protected)  # the database fences too: it must spare the same souls
    return SQLiteStore(Path(config.data) / "gunrelay.sqlite3", synchronous=config.sqlite_synchronous)


def build_app(config: Settings) -> "GunFirst":
    data_dir = Path(config.data)
    identity = load_or_create_identity(data_dir)
    store = make_store(config, Protected((identity.space, config.system_node)))
    token, token_file = admin_token(data_dir, config.admin_token)
    control = ResetControl(store, identity, system_node=config.system_node, legacy=config.legacy_nodes, instance=config.instance)
    limits = Limits(
        max_frame_bytes=config.max_frame_bytes,
        max_skew_ms=config.max_skew_ms,
        max_messages_per_s=config.max_messages_per_s,
        message_burst=config.message_burst,
        max_fields_per_s=config.max_fields_per_s,
        field_burst=config.field_burst,
        max_subscriptions=config.max_subscriptions,
    )
    relay = Relay(
        store, fence=control.fence, acknowledge=control.acknowledge, limits=limits,
        max_queue_bytes=config.max_send_queue_bytes, clock_settle_s=config.clock_settle_s, relay_pub=identity.pub,
    )
    control.connect_relay(relay)
    access = Access(relay, store)
    expiry = Expiry(control, store, sweep_s=config.ttl_sweep_s)
    snapshots = Snapshots(store, control, data_dir / "snapshots")
    files = GunFiles(find_gun_dir(config.gun_dir))
    ready = asyncio.Event()
    start = Starting()
    privacy_key = hashlib.sha256(b"gunrelay privacy labels\0" + identity.private_key.private_numbers().private_value.to_bytes(32, "big"))
    privacy = Privacy(Anonymizer(privacy_key.digest()), enabled=config.privacy)
    logbook = LogBook(privacy)
    logging.getLogger("gunrelay").setLevel(config.log_level.upper())
    monitor = Monitor(relay, store)
    catch_up = StreamCatchUp(relay, store)
    mesh = Mesh(relay, config.peer_urls, catch_up, max_frame_bytes=config.max_frame_bytes)
    mesh_resets = MeshResets(relay, control, identity, config.trusted_relays, expiry)
    mesh_resets.attach()  # what merges accept reaches it; new relay links learn our resets first
    mesh_sync = MeshSync(mesh, mesh_resets.pending, enabled=bool(config.trusted_relays), wait_s=config.mesh_sync_wait_s)
    auth = ConsoleAuth(
        token,
        session_ttl_s=config.session_ttl_s,
        allow=config.admin_allow,
        throttle=LoginThrottle(max_failures=config.login_max_failures, lockout_s=config.login_lockout_s),
        store=SharedSessions(store, MAX_SESSIONS),  # a login through one process of a fleet works through all
    )
    audit = Audit(store, privacy)
    gate = Gate(auth, audit)
    ops = api.Operations(relay, control, access, expiry, snapshots, privacy)
    metrics = Metrics(RelayCollector(relay, control, access, monitor, expiry, auth.counters, mesh))

    async def keepalive() -> None:
        while True:
            await asyncio.sleep(config.keepalive_s)
            relay.keepalive()

    # PostgreSQL: processes sharing one store share the data folder too (its identity and token),
    # so each holds it shared; an offline command still needs it alone, and SQLite one process
    fleet = Fleet(relay, control, access, store) if isinstance(store, PostgresStore) else None
    lock = DataLock(data_dir, shared=fleet is not None)

    async def serve_from_store() -> None:
        """Everything that needs the open store, in order; then the relay serves."""
        await control.start()  # fences are live before the first frame is read
        for name in snapshots.discard_partials():
            log.warning("removed %s, left by a snapshot a crash interrupted", name)
        await access.start()
        await expiry.start()
        if fleet is not None:  # after the fences and bans are live: what other processes store is pushed through them
            await fleet.start()
        await monitor.start()
        await catch_up.start()  # after mesh_resets: a new relay link is sent our resets before we ask for its stream
        mesh_sync.begin()  # its wait for the mesh starts with the mesh
        mesh.start()  # after the fences are live: nothing from a peer relay is judged without them
        ready.set()
        start.reason = None
        log.info("relay identity %s", identity.pub)
        if token_file is not None:
            log.info("operator token in %s (or set GUNRELAY_ADMIN_TOKEN)", token_file)
        if files.gun_dir is None:
            log.warning("npm gun package not found: /gun.js is not served (set --gun-dir)")

    async def open_when_reachable(first: StoreUnreachable) -> None:
        """The store's server could not be reached at start: answer /health (503, and why) and
        refuse clients meanwhile, try again with growing pauses, and serve once it is open. A
        failure that trying again will not mend ends the process, as it would have at start."""
        failure: Exception = first
        pause = START_RETRY_FIRST_S
        try:
            while True:
                start.reason = f"waiting for the store: {failure}"
                log.warning("%s; trying again in %.1f s", start.reason, pause)
                await asyncio.sleep(pause)
                pause = min(2 * pause, START_RETRY_MAX_S)
                try:
                    await store.open()
                    break
                except StoreUnreachable as exc:
                    failure = exc
            log.info("the store is reachable: starting")
            await serve_from_store()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            start.fail(f"cannot start: {exc}")
            log.error("%s", start.fatal, exc_info=not isinstance(exc, GunrelayError))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lock.acquire()  # held already when started by `gunrelay serve`, which reports a busy folder
        logbook.attach("", "uvicorn")
        ticker = asyncio.create_task(keepalive())
        waiting: asyncio.Task[None] | None = None
        try:
            await store.open()
            await serve_from_store()
        except StoreUnreachable as exc:
            start.reason = f"waiting for the store: {exc}"
            waiting = asyncio.create_task(open_when_reachable(exc))
        except GunrelayError as exc:  # a wrong URL, a newer schema...: said in one line, and the process exits
            start.fail(f"cannot start: {exc}")
            log.error("%s", start.fatal)
        try:
            yield
        finally:
            ticker.cancel()
            if waiting is not None:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            if ready.is_set():
                await mesh.stop()
                await catch_up.stop()
                await mesh_resets.stop()
                if fleet is not None:
                    await fleet.stop()
                await monitor.stop()
                await control.stop()
                await expiry.stop()
                await relay.drain()
            await store.close()
            lock.release()
            log.info("store closed cleanly")
            logbook.detach()

    async def health(request: Request) -> JSONResponse:
        if not ready.is_set():
            return JSONResponse({"status": "starting", "reason": start.fatal or start.reason}, status_code=503, headers=CORS)
        syncing = mesh_sync.waiting_for()
        if syncing is not None:  # not in step with the relays it obeys yet: clients are refused meanwhile
            return JSONResponse({"status": "syncing", "reason": syncing}, status_code=503, headers=CORS)
        # 503 while writes cannot be made durable: a probe should take the relay out of service
        # (it refuses every write meanwhile); /version answers as long as the process runs
        healthy = store.health.ok and store.health.stuck() is None
        return JSONResponse(
            {
                "status": "ok" if healthy else "degraded",
                "version": __version__,
                "peers": len(relay.peers),
                "storage": config.storage,
                "storage_health": store.health.as_json(),
                "clock": relay.clock_watch.report(relay.monotonic()),
                "fenced_writes": relay.fenced_writes,
            },
            status_code=200 if healthy else 503,
            headers=CORS,
        )

    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"version": __version__, "python": platform.python_version(), "gun": files.gun_version()}, headers=CORS)

    async def metrics_route(request: Request) -> Response:
        if not auth.allowed(request.client.host if request.client else "?"):
            return JSONResponse({"error": "not allowed (--admin-allow)"}, status_code=403)
        return await metrics.endpoint(request)

    async def identity_route(request: Request) -> JSONResponse:
        return JSONResponse({"pub": identity.pub, "epub": identity.epub}, headers=CORS)

    async def reset_acks_route(request: Request) -> JSONResponse:
        # public, like the signed record itself: how many peers acknowledged (the demo shows it)
        reset_id = request.path_params["reset_id"]
        await control.refresh_acks([reset_id])  # in a fleet: acks through the other processes too
        count = control.acknowledged_peers(reset_id)
        if count is None:
            return JSONResponse({"error": f"no reset {reset_id!r}"}, status_code=404, headers=CORS)
        return JSONResponse({"reset_id": reset_id, "acknowledged": count}, headers=CORS)

    routes = [
        Route("/health", health),
        Route("/version", version),
        Route("/metrics", metrics_route),
        Route("/-/identity", identity_route),
        Route("/-/resets/{reset_id}/acknowledged", reset_acks_route),
        *login.routes(auth, audit, privacy, gate),
        *api.routes(ops, gate),
        *observe.routes(ops, monitor, audit, logbook, mesh, gate, fleet),
        *console.routes(),
        Route("/gun.js", files.gun_js),
        Route("/sea.js", files.sea_js),
        Route("/gun/{path:path}", files.package_file),
        Route("/gunrelay.js", plugin_js),
        Route("/demo", demo_page),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.relay = relay
    app.state.mesh = mesh
    app.state.data_lock = lock
    app.state.fleet = fleet
    app.state.start = start
    app.state.store = store
    app.state.control = control
    app.state.identity = identity
    app.state.token = token
    app.state.token_file = token_file
    app.state.access = access
    app.state.expiry = expiry
    app.state.snapshots = snapshots
    app.state.interchange = Interchange(store, control, expiry, identity.pub, max_skew_ms=config.max_skew_ms, clock_ms=relay.clock_ms)
    app.state.connection_guard = ConnectionGuard(
        ConnectionLimits(descriptor_budget(config.max_connections), config.max_connections_per_address),
        relay.stats.refuse,
        deadline_s=config.handshake_timeout_s,
        trusted=TrustedProxies.parse(config.trusted_proxies),
    )
    return GunFirst(GunSocket(relay, access.refuse, mesh_sync.waiting_for, MESH_HEADER.encode()), app, start)


class Starting:
    """Why the relay does not serve yet (None once it does), and what ended its start for good."""

    def __init__(self) -> None:
        # None until the start is known to wait (uvicorn serves nothing before the lifespan's start
        # has run: it either opened the store, or set this and left a task trying)
        self.reason: str | None = None
        self.fatal: str | None = None  # set: the command line exits with it, not 0
        self.exit: Callable[[], None] | None = None  # set by the command line: stops the server

    def fail(self, why: str) -> None:
        self.fatal = self.reason = why
        if self.exit is not None:
            self.exit()


# what a relay still starting refuses: the GUN websocket and what reads or changes the store or
# the control log (the admin API but its description, reset acks, /metrics); /health, /version,
# /-/identity, the console's pages and GunJS's files answer from the start
NEEDS_THE_STORE = ("/-/api/", "/-/resets/", "/metrics")
ANSWERS_WHILE_STARTING = ("/-/api/openapi.json",)


class GunFirst:
    """Sends ``/gun`` websockets straight to the relay, everything else to Starlette; while the
    relay is still starting (its store not open yet: ``Starting``), refuses what needs the store.

    Starlette's router and middleware would sit on every open GUN socket's call stack for the
    connection's whole life (about 1.5 KB each); the relay's socket needs none of them.
    """

    def __init__(self, gun: GunSocket, app: Starlette, start: Starting):
        self.gun = gun
        self.app = app
        self.start = start
        self.state = app.state  # what tests and the offline CLI reach into

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # a plain function handing over the coroutine: no frame of its own on every socket's stack
        if self.start.reason is not None and scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if (path == "/gun" or path.startswith(NEEDS_THE_STORE)) and path not in ANSWERS_WHILE_STARTING:
                return self._not_yet(scope, send)
        if scope["type"] == "websocket" and scope["path"] == "/gun":
            return self.gun(scope, receive, send)
        return self.app(scope, receive, send)

    async def _not_yet(self, scope: dict[str, Any], send: Any) -> None:
        if scope["type"] == "websocket":  # before accept: HTTP 403 at the upgrade; GunJS tries again
            await send({"type": "websocket.close", "code": 1013})
            return
        body = json.dumps({"error": f"the relay is not serving yet ({self.start.reason})"}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"2"), *((k.lower().encode(), v.encode()) for k, v in CORS.items())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def prepare_data_folder(config: Settings) -> None:
    """Create the relay's identity and token before several processes start on the folder at once."""
    data_dir = Path(config.data)
    load_or_create_identity(data_dir)
    admin_token(data_dir, config.admin_token)


def local_token_files(data: str | None, local_port: int | None) -> list[Path]:
    """Where the operator token of a relay may be, in order: its data folder's, the one a relay on
    this machine's ``local_port`` noted when it started, ./gunrelay-data's."""
    candidates = []
    if data:
        candidates.append(Path(data) / TOKEN_FILE)
    if local_port is not None:
        registered = token_file_for_port(local_port)
        if registered is not None:
            candidates.append(registered)
    candidates.append(Path("./gunrelay-data") / TOKEN_FILE)
    return candidates


def note_local_relay(app: Any, port: int) -> None:
    """Note which token file a relay on this port uses, so that `gunrelay reset --url
    http://127.0.0.1:PORT` finds the operator token by itself."""
    if app.state.token_file is None:
        return
    try:
        register_local_relay(port, app.state.token_file)
    except OSError as exc:
        log.warning("could not note the token file for local CLIs: %s", exc)


def uvicorn_config(app: Any, config: Settings) -> Any:
    """How uvicorn serves the app: our connection guard and websocket protocol, our limits, TLS
    when a certificate is set. Proxy headers are read by the connection guard (``handshake``),
    for the ``--trusted-proxies`` only, not by uvicorn's middleware."""
    import uvicorn

    http_protocol, ws_protocol = protocols(app.state.connection_guard)
    return uvicorn.Config(
        app,
        log_level=config.log_level.lower(),
        http=http_protocol,
        ws=ws_protocol,
        # frames up to max_frame_bytes are ours to refuse with an error reply; past twice that the
        # websocket layer closes the connection (1009) before buffering more
        ws_max_size=max(2 * config.max_frame_bytes, 1 << 20),
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        interface="asgi3",
        ssl_certfile=config.tls_cert or None,
        ssl_keyfile=config.tls_key or None,
    )
