"""What the console watches: live figures, connected peers, the mesh's links, the audit log and recent logs.

Read-only routes behind the ``Gate``. Stats come from the ``Monitor`` (rates over the last sample
interval and ten minutes of history), and with ``--storage postgres`` from every process of the
fleet (``fleet``: their heartbeats, ``server/fleet.py``); addresses go through privacy mode.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..server.fleet import Fleet
from ..server.logbook import LEVELS, LogBook
from ..server.mesh import Mesh
from ..server.monitor import Monitor
from .api import Operations
from ..server.audit import Audit
from .gate import BadRequest, Gate


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    digits = raw.lstrip("0") or raw[-1:]  # "007" -> "7", "000" -> "0", "" stays ""
    # isdigit() alone lets through digits int() refuses ("²"), and int() refuses over 4300 digits
    if not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(high)) or not low <= int(digits) <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}")
    return int(digits)


def routes(
    ops: Operations, monitor: Monitor, audit: Audit, logbook: LogBook, mesh: Mesh, gate: Gate, fleet: Fleet | None = None
) -> list[Route]:
    relay = ops.relay

    async def stats(request: Request) -> JSONResponse:
        totals = monitor.totals()
        latest = monitor.traffic.latest() or {}
        store = monitor.store_size()
        relay_stats = relay.stats
        # several processes on one PostgreSQL store: every one of them (its heartbeat) and the totals
        shared = {"fleet": await fleet.report()} if fleet is not None else {}
        return JSONResponse(
            {
                **shared,
                "at": monitor.clock() * 1000,
                "uptime_s": monitor.uptime_s(),
                "sample_interval_s": monitor.interval_s,
                "connections": len(relay.peers),
                "peak_connections": relay_stats.peak_connections,
                "totals": {
                    **totals,
                    "acks": relay_stats.acks,
                    "errors": sum(relay_stats.errors.values()),
                    "fenced_writes": relay.fenced_writes,
                    "refused": sum(relay_stats.refused.values()),
                },
                "rates": {name: latest.get(name, 0.0) for name in totals},
                "store": {"souls": store.souls, "fields": store.fields, "bytes": store.bytes},
                "resets": len(ops.control.resets),
                "bans": len(ops.access.active()),
                "history": monitor.traffic.history(),
            }
        )

    async def peers(request: Request) -> JSONResponse:
        last_ack = ops.control.latest_acks()
        show = ops.privacy.show
        return JSONResponse(
            {
                "peers": [
                    {
                        "id": peer.id,
                        "address": show(peer.address),
                        "pid": peer.pid,
                        "since": peer.connected_at * 1000,
                        "messages_in": peer.messages_in,
                        "messages_out": peer.messages_out,
                        "subscriptions": relay.subscription_count(peer),
                        "last_ack": last_ack(peer),
                        "relay": peer.relay,
                    }
                    for peer in list(relay.peers.values())
                    if not peer.closed
                ]
            }
        )

    async def mesh_links(request: Request) -> JSONResponse:
        """The relays this one dialled (``--peer``) and the ones that dialled it."""
        show = ops.privacy.show
        inbound = [
            {
                "address": show(link.address), "pid": link.pid, "relay": link.relay_pub, "since": link.connected_at * 1000,
                "messages_in": link.messages_in, "stream": mesh.catch_up.report(link.relay_pub),
            }
            for link in list(relay.engine.relay_links)
            if not link.dialled and not link.closed
        ]
        dialled = []
        for item in mesh.report():
            item["since"] = item["since"] * 1000
            dialled.append(item)
        return JSONResponse({"pid": relay.pid, "dialled": dialled, "inbound": inbound})

    async def audit_log(request: Request) -> JSONResponse:
        page = _int_param(request, "page", 1, 1, 10**9)
        per_page = _int_param(request, "per_page", 50, 1, 500)
        return JSONResponse(await audit.page(page, per_page))

    async def logs(request: Request) -> JSONResponse:
        level = request.query_params.get("level", "info")
        if level not in LEVELS:
            raise BadRequest(f"'level' is one of {', '.join(LEVELS)}")
        return JSONResponse({"records": logbook.recent(level, _int_param(request, "limit", 500, 0, 5000))})

    route = gate.route
    return [
        route("GET", "/-/api/stats", stats),
        route("GET", "/-/api/peers", peers),
        route("GET", "/-/api/mesh", mesh_links),
        route("GET", "/-/api/audit", audit_log),
        route("GET", "/-/api/logs", logs),
    ]
