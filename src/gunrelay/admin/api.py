"""The JSON admin API under ``/-/api/``, authenticated by the operator's token.

Every request carries ``Authorization: Bearer <token>``. Bad input gets a 4xx with
``{"error": "..."}`` and changes nothing.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..core.bans import Ban
from ..core.duration import parse_duration
from ..server.access import Access
from ..server.control import ResetControl, ResetError
from ..server.expiry import Expiry
from ..server.snapshots import Snapshots

MAX_BODY = 64 * 1024

Handler = Callable[[Request], Awaitable[JSONResponse]]


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def authenticated(token: str, handler: Handler) -> Handler:
    expected = ("Bearer " + token).encode()

    async def guarded(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").encode()
        if not secrets.compare_digest(given, expected):
            return _error(401, "missing or wrong operator token (Authorization: Bearer <token>)")
        return await handler(request)

    return guarded


async def _json_body(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ResetError(f"request body over {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ResetError("request body is not JSON") from None
    if not isinstance(data, dict):
        raise ResetError("request body must be a JSON object")
    return data


def _text(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise ResetError(f"'{name}' must be a string")
    return value


def _duration(data: dict[str, Any], name: str) -> float | None:
    if data.get(name) is None:
        return None
    try:
        return parse_duration(data[name])
    except ValueError as exc:
        raise ResetError(f"'{name}': {exc}") from None


def _ban_json(ban: Ban) -> dict[str, Any]:
    return {"address": ban.address, "until": ban.until, "reason": ban.reason}


def routes(control: ResetControl, access: Access, expiry: Expiry, snapshots: Snapshots, token: str) -> list[Route]:
    async def create_reset(request: Request) -> JSONResponse:
        try:
            data = await _json_body(request)
            keep = data.get("keep", [])
            if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
                raise ResetError("'keep' must be a list of strings")
            ban_connected = _duration(data, "ban_connected")
            dry_run = bool(data.get("dry_run", False))
            taken = await snapshots.create("before-reset") if data.get("snapshot") and not dry_run else None
            result = await control.issue(
                scope=_text(data, "scope", "*"),
                reason=_text(data, "reason"),
                message=_text(data, "message"),
                keep=tuple(keep),
                dry_run=dry_run,
            )
        except ResetError as exc:
            return _error(400, str(exc))
        if taken is not None:
            result["snapshot"] = taken.as_json()
        if ban_connected is not None and not dry_run:
            bans = await access.ban_connected(ban_connected, f"reset {result['record']['reset_id']}: --ban-connected")
            result["banned"] = [_ban_json(b) for b in bans]
        return JSONResponse(result, status_code=200 if result["dry_run"] else 201)

    async def quarantine(request: Request) -> JSONResponse:
        """Ban the addresses of connected peers that have not acknowledged the reset."""
        reset_id = request.path_params["reset_id"]
        try:
            seconds = _duration(await _json_body(request), "duration")
            if seconds is None:
                raise ResetError("'duration' is required, e.g. \"10m\"")
            status = control.describe(reset_id)
        except ResetError as exc:
            return _error(400, str(exc))
        addresses = [p["address"] for p in status["connected_not_acknowledged"]]
        bans = await access.ban(addresses, seconds, f"reset {reset_id}: not acknowledged")
        return JSONResponse({"banned": [_ban_json(b) for b in bans]})

    async def list_bans(request: Request) -> JSONResponse:
        return JSONResponse({"bans": [_ban_json(b) for b in access.active()]})

    async def create_ban(request: Request) -> JSONResponse:
        try:
            data = await _json_body(request)
            seconds = _duration(data, "duration")
            if seconds is None:
                raise ResetError("'duration' is required, e.g. \"5m\"")
            reason = _text(data, "reason")
            if data.get("connected") is True:
                bans = await access.ban_connected(seconds, reason or "all connected")
            else:
                address = _text(data, "address")
                if not address:
                    raise ResetError("give 'address', or 'connected': true")
                bans = await access.ban([address], seconds, reason)
        except ResetError as exc:
            return _error(400, str(exc))
        return JSONResponse({"banned": [_ban_json(b) for b in bans]}, status_code=201)

    async def delete_ban(request: Request) -> JSONResponse:
        address = request.path_params["address"]
        if not await access.unban(address):
            return _error(404, f"{address!r} is not banned")
        return JSONResponse({"unbanned": address})

    async def list_resets(request: Request) -> JSONResponse:
        return JSONResponse({"resets": control.history()})

    async def show_reset(request: Request) -> JSONResponse:
        try:
            return JSONResponse(control.describe(request.path_params["reset_id"]))
        except ResetError as exc:
            return _error(404, str(exc))

    async def create_rotation(request: Request) -> JSONResponse:
        try:
            data = await _json_body(request)
            grace = _duration(data, "grace")
            result = await control.rotate(
                scope=_text(data, "scope"),
                to=_text(data, "to"),
                grace_s=24 * 3600 if grace is None else grace,
                reason=_text(data, "reason"),
                message=_text(data, "message"),
            )
        except ResetError as exc:
            return _error(400, str(exc))
        return JSONResponse(result, status_code=201)

    async def list_ttl(request: Request) -> JSONResponse:
        rules = [{"prefix": p, "ttl_s": ms / 1000} for p, ms in sorted(expiry.rules.items())]
        return JSONResponse({"ttl": rules, "expired_since_start": expiry.expired})

    async def set_ttl(request: Request) -> JSONResponse:
        try:
            data = await _json_body(request)
            seconds = _duration(data, "ttl")
            if seconds is None:
                raise ResetError("'ttl' is required, e.g. \"7d\"")
            await expiry.set(_text(data, "prefix"), seconds)
        except ResetError as exc:
            return _error(400, str(exc))
        return JSONResponse({"prefix": data["prefix"], "ttl_s": seconds}, status_code=201)

    async def delete_ttl(request: Request) -> JSONResponse:
        prefix = request.query_params.get("prefix", "")
        if not await expiry.remove(prefix):
            return _error(404, f"no TTL rule for {prefix!r}")
        return JSONResponse({"removed": prefix})

    async def list_snapshots(request: Request) -> JSONResponse:
        return JSONResponse({"snapshots": [i.as_json() for i in snapshots.list()]})

    async def create_snapshot(request: Request) -> JSONResponse:
        try:
            info = await snapshots.create(_text(await _json_body(request), "label"))
        except ResetError as exc:
            return _error(400, str(exc))
        return JSONResponse(info.as_json(), status_code=201)

    async def delete_snapshot(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        try:
            snapshots.delete(name)
        except ResetError as exc:
            return _error(400, str(exc))
        except KeyError:
            return _error(404, f"no snapshot {name!r}")
        return JSONResponse({"deleted": name})

    async def restore_snapshot(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        try:
            data = await _json_body(request)
            result = await snapshots.restore(name, _text(data, "reason"), _text(data, "message"))
        except ResetError as exc:
            return _error(400, str(exc))
        except KeyError:
            return _error(404, f"no snapshot {name!r}")
        return JSONResponse(result)

    def guard(handler: Handler) -> Handler:
        return authenticated(token, handler)

    return [
        Route("/-/api/resets", guard(create_reset), methods=["POST"]),
        Route("/-/api/resets", guard(list_resets), methods=["GET"]),
        Route("/-/api/resets/{reset_id}", guard(show_reset), methods=["GET"]),
        Route("/-/api/resets/{reset_id}/quarantine", guard(quarantine), methods=["POST"]),
        Route("/-/api/bans", guard(list_bans), methods=["GET"]),
        Route("/-/api/bans", guard(create_ban), methods=["POST"]),
        Route("/-/api/bans/{address}", guard(delete_ban), methods=["DELETE"]),
        Route("/-/api/rotations", guard(create_rotation), methods=["POST"]),
        Route("/-/api/ttl", guard(list_ttl), methods=["GET"]),
        Route("/-/api/ttl", guard(set_ttl), methods=["POST"]),
        Route("/-/api/ttl", guard(delete_ttl), methods=["DELETE"]),
        Route("/-/api/snapshots", guard(list_snapshots), methods=["GET"]),
        Route("/-/api/snapshots", guard(create_snapshot), methods=["POST"]),
        Route("/-/api/snapshots/{name}", guard(delete_snapshot), methods=["DELETE"]),
        Route("/-/api/snapshots/{name}/restore", guard(restore_snapshot), methods=["POST"]),
    ]
