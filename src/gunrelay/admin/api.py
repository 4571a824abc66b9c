"""The JSON admin API's operations under ``/-/api/``: resets, bans, peers, rotations, TTL rules,
snapshots, privacy mode, and a live relay's export and import (gunrelay-jsonl lines, streamed).
Every route passes the ``Gate`` (operator token or console session, CSRF, audit log); bad input
gets a 4xx with ``{"error": "..."}`` and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ..core.bans import Ban
from ..core.privacy import Privacy
from ..server.access import Access
from ..core.errors import OperatorError
from ..server.control import ResetControl
from ..server.expiry import Expiry
from ..server.interchange import Interchange
from ..server.relay import Relay
from ..server.snapshots import LABEL, Snapshots
from . import openapi
from .gate import BadRequest, Gate, duration, error, flag, json_body, one_route_per_path, required_duration, text


NDJSON = "application/x-ndjson"
LIVE_IMPORT_BATCH = 250  # fields judged and merged at once by a live import: SEA checks of one batch stay short
MAX_IMPORT_LINE = 16 << 20  # longest line a live import takes (bytes); a longer one is malformed, skipped
NOT_A_LINE = "\x00 not a line"  # what an over-long or non-UTF-8 line becomes: no parser accepts it


async def body_lines(request: Request, max_line: int = MAX_IMPORT_LINE) -> AsyncIterator[str]:
    """The request body's lines as they arrive, never holding more than one line (bounded)."""
    pending: list[bytes] = []
    pending_size = 0
    too_long = False
    async for chunk in request.stream():
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            if too_long or pending_size + len(part) > max_line:
                yield NOT_A_LINE
            else:
                yield _text(b"".join(pending) + part)
            pending, pending_size, too_long = [], 0, False
        last = parts[-1]
        if too_long or pending_size + len(last) > max_line:
            pending, pending_size, too_long = [], 0, True
        elif last:
            pending.append(last)
            pending_size += len(last)
    if too_long:
        yield NOT_A_LINE
    elif pending:
        yield _text(b"".join(pending))


def _text(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_A_LINE


def interchange_of(request: Request) -> Interchange:
    found: Interchange = request.app.state.interchange  # made with the store by app.build_app
    return found


@dataclass(frozen=True)
class Operations:
    """What the API acts on."""

    relay: Relay
    control: ResetControl
    access: Access
    expiry: Expiry
    snapshots: Snapshots
    privacy: Privacy

    def ban_json(self, ban: Ban) -> dict[str, Any]:
        return {"address": self.privacy.show(ban.address), "until": ban.until, "reason": ban.reason}

    def shown_addresses(self, report: dict[str, Any]) -> dict[str, Any]:
        """A reset report with its peers' addresses shown through privacy mode."""
        if self.privacy.enabled:
            for key in ("acknowledged", "connected_not_acknowledged"):
                for item in report.get(key, ()):
                    item["address"] = self.privacy.show(item["address"])
        return report


def routes(ops: Operations, gate: Gate) -> list[Route]:
    control, access, expiry, snapshots, privacy = ops.control, ops.access, ops.expiry, ops.snapshots, ops.privacy

    async def create_reset(request: Request) -> JSONResponse:
        data = await json_body(request)
        keep = data.get("keep", [])
        if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
            raise BadRequest("'keep' must be a list of strings")
        ban_connected = duration(data, "ban_connected")
        dry_run, snapshot = flag(data, "dry_run"), flag(data, "snapshot")
        scope, reason, message = text(data, "scope", "*"), text(data, "reason"), text(data, "message")
        if dry_run:
            return JSONResponse(await control.issue(scope=scope, reason=reason, message=message, keep=tuple(keep), dry_run=True))
        control.check_scope(scope)  # before a snapshot is taken for nothing
        control.check_clock()
        taken = await snapshots.create("before-reset") if snapshot else None
        result = await control.issue(scope=scope, reason=reason, message=message, keep=tuple(keep))
        if taken is not None:
            result["snapshot"] = taken.as_json()
        if ban_connected is not None:
            bans = await access.ban_connected(ban_connected, f"reset {result['record']['reset_id']}: --ban-connected")
            result["banned"] = [ops.ban_json(b) for b in bans]
        return JSONResponse(result, status_code=201)

    async def quarantine(request: Request) -> JSONResponse:
        """Ban the addresses of connected peers that have not acknowledged the reset."""
        reset_id = request.path_params["reset_id"]
        seconds = required_duration(await json_body(request), "duration", "10m")
        try:
            await control.refresh_acks([reset_id])  # in a fleet: acks recorded through the other processes too
            status = control.describe(reset_id)
        except OperatorError as exc:
            return error(404, str(exc))
        addresses = [p["address"] for p in status["connected_not_acknowledged"]]
        bans = await access.ban(addresses, seconds, f"reset {reset_id}: not acknowledged")
        return JSONResponse({"banned": [ops.ban_json(b) for b in bans]})

    async def list_resets(request: Request) -> JSONResponse:
        await control.refresh_acks()  # in a fleet: acks recorded through the other processes too
        return JSONResponse({"resets": control.history()})

    async def show_reset(request: Request) -> JSONResponse:
        reset_id = request.path_params["reset_id"]
        try:
            await control.refresh_acks([reset_id])
            return JSONResponse(ops.shown_addresses(control.describe(reset_id)))
        except OperatorError as exc:
            return error(404, str(exc))

    async def list_bans(request: Request) -> JSONResponse:
        return JSONResponse({"bans": [ops.ban_json(b) for b in access.active()]})

    async def create_ban(request: Request) -> JSONResponse:
        data = await json_body(request)
        seconds = required_duration(data, "duration", "5m")
        reason = text(data, "reason")
        if flag(data, "connected"):
            bans = await access.ban_connected(seconds, reason or "all connected")
        else:
            address = privacy.resolve(text(data, "address").strip())
            if not address:
                raise BadRequest("give 'address', or 'connected': true")
            bans = await access.ban([address], seconds, reason)
        return JSONResponse({"banned": [ops.ban_json(b) for b in bans]}, status_code=201)

    async def delete_ban(request: Request) -> JSONResponse:
        given = request.path_params["address"]
        if not await access.unban(privacy.resolve(given)):
            return error(404, f"{given!r} is not banned")
        return JSONResponse({"unbanned": given})

    def connected(request: Request) -> Any:
        peer = ops.relay.peers.get(request.path_params["peer_id"])
        if peer is None:
            raise LookupError(f"no connected peer {request.path_params['peer_id']!r}")
        return peer

    async def kick_peer(request: Request) -> JSONResponse:
        try:
            peer = connected(request)
        except LookupError as exc:
            return error(404, str(exc))
        peer.close(1008, "kicked by the operator")
        return JSONResponse({"kicked": peer.id})

    async def ban_peer(request: Request) -> JSONResponse:
        data = await json_body(request)
        seconds = required_duration(data, "duration", "10m")
        try:
            peer = connected(request)
        except LookupError as exc:
            return error(404, str(exc))
        bans = await access.ban([peer.address], seconds, text(data, "reason") or f"peer {peer.id}")
        return JSONResponse({"banned": [ops.ban_json(b) for b in bans]}, status_code=201)

    async def create_rotation(request: Request) -> JSONResponse:
        data = await json_body(request)
        grace = duration(data, "grace")
        result = await control.rotate(
            scope=text(data, "scope"),
            to=text(data, "to"),
            grace_s=24 * 3600 if grace is None else grace,
            reason=text(data, "reason"),
            message=text(data, "message"),
        )
        return JSONResponse(result, status_code=201)

    async def namespaces(request: Request) -> JSONResponse:
        return JSONResponse({"instance": control.instance, "rotations": control.rotations()})

    async def list_ttl(request: Request) -> JSONResponse:
        rules = [{"prefix": p, "ttl_s": ms / 1000} for p, ms in sorted(expiry.rules.items())]
        return JSONResponse({"ttl": rules, "expired_since_start": expiry.expired})

    async def set_ttl(request: Request) -> JSONResponse:
        data = await json_body(request)
        seconds = required_duration(data, "ttl", "7d")
        prefix = text(data, "prefix")
        in_step = await expiry.set(prefix, seconds)  # in a fleet: in force on every process, or who is not
        return JSONResponse({"prefix": prefix, "ttl_s": seconds, **in_step}, status_code=201)

    async def delete_ttl(request: Request) -> JSONResponse:
        prefix = request.query_params.get("prefix", "")
        in_step = await expiry.remove(prefix)
        if in_step is None:
            return error(404, f"no TTL rule for {prefix!r}")
        return JSONResponse({"removed": prefix, **in_step})

    async def list_snapshots(request: Request) -> JSONResponse:
        return JSONResponse({"snapshots": [i.as_json() for i in await snapshots.list()]})

    async def create_snapshot(request: Request) -> JSONResponse:
        label = text(await json_body(request), "label")
        if label and not LABEL.fullmatch(label):  # fullmatch: LABEL's "$" would let a final newline through
            raise BadRequest("a snapshot label is 1-48 letters, digits, '.', '_' or '-'")
        info = await snapshots.create(label)
        return JSONResponse(info.as_json(), status_code=201)

    async def delete_snapshot(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        try:
            await snapshots.delete(name)
        except KeyError:
            return error(404, f"no snapshot {name!r}")
        return JSONResponse({"deleted": name})

    async def restore_snapshot(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        data = await json_body(request)
        try:
            result = await snapshots.restore(name, text(data, "reason"), text(data, "message"))
        except KeyError:
            return error(404, f"no snapshot {name!r}")
        return JSONResponse(result)

    async def set_privacy(request: Request) -> JSONResponse:
        enabled = (await json_body(request)).get("enabled")
        if not isinstance(enabled, bool):
            raise BadRequest("'enabled' must be true or false")
        privacy.enabled = enabled
        return JSONResponse({"privacy": enabled})

    async def export_store(request: Request) -> StreamingResponse:
        """The whole store as gunrelay-jsonl, streamed a page at a time while the relay serves."""
        return StreamingResponse(interchange_of(request).export_lines(), media_type=NDJSON)

    async def import_fields(request: Request) -> JSONResponse:
        """gunrelay-jsonl lines (a header without resets or TTL rules, then fields) merged through
        the import's one path with the live fence, HAM, and fan-out to subscribers (``Relay.publish``)."""
        dry_run = request.query_params.get("dry_run", "false")
        if dry_run not in ("true", "false"):
            raise BadRequest("'dry_run' must be true or false")
        request.state.body = {"dry_run": dry_run == "true"}  # the audit log's detail, completed below
        report = await interchange_of(request).import_lines(
            body_lines(request), dry_run=dry_run == "true", merge=ops.relay.publish, batch=LIVE_IMPORT_BATCH, live=True,
        )
        result = report.as_json()
        request.state.body = {key: result[key] for key in ("dry_run", "lines", "imported", "kept", "fenced", "refused", "malformed")}
        return JSONResponse(result)

    route = gate.route
    return one_route_per_path([
        route("GET", "/-/api/export", export_store),
        route("POST", "/-/api/import", import_fields, "store.import"),
        Route("/-/api/openapi.json", openapi.endpoint(gate.auth), methods=["GET"]),  # no secret in it: the allowlist only
        route("POST", "/-/api/resets", create_reset, "reset.create"),
        route("GET", "/-/api/resets", list_resets),
        route("GET", "/-/api/resets/{reset_id}", show_reset),
        route("POST", "/-/api/resets/{reset_id}/quarantine", quarantine, "reset.quarantine"),
        route("GET", "/-/api/bans", list_bans),
        route("POST", "/-/api/bans", create_ban, "ban.create"),
        route("DELETE", "/-/api/bans/{address}", delete_ban, "ban.delete"),
        route("POST", "/-/api/peers/{peer_id}/kick", kick_peer, "peer.kick"),
        route("POST", "/-/api/peers/{peer_id}/ban", ban_peer, "peer.ban"),
        route("GET", "/-/api/namespaces", namespaces),
        route("POST", "/-/api/rotations", create_rotation, "rotation.create"),
        route("GET", "/-/api/ttl", list_ttl),
        route("POST", "/-/api/ttl", set_ttl, "ttl.set"),
        route("DELETE", "/-/api/ttl", delete_ttl, "ttl.delete"),
        route("GET", "/-/api/snapshots", list_snapshots),
        route("POST", "/-/api/snapshots", create_snapshot, "snapshot.create"),
        route("DELETE", "/-/api/snapshots/{name}", delete_snapshot, "snapshot.delete"),
        route("POST", "/-/api/snapshots/{name}/restore", restore_snapshot, "snapshot.restore"),
        route("POST", "/-/api/privacy", set_privacy, "privacy.set"),
    ])
