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

from ..server.control import ResetControl, ResetError

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


def routes(control: ResetControl, token: str) -> list[Route]:
    async def create_reset(request: Request) -> JSONResponse:
        try:
            data = await _json_body(request)
            keep = data.get("keep", [])
            if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
                raise ResetError("'keep' must be a list of strings")
            result = await control.issue(
                scope=_text(data, "scope", "*"),
                reason=_text(data, "reason"),
                message=_text(data, "message"),
                keep=tuple(keep),
                dry_run=bool(data.get("dry_run", False)),
            )
        except ResetError as exc:
            return _error(400, str(exc))
        return JSONResponse(result, status_code=200 if result["dry_run"] else 201)

    async def list_resets(request: Request) -> JSONResponse:
        return JSONResponse({"resets": control.history()})

    async def show_reset(request: Request) -> JSONResponse:
        try:
            return JSONResponse(control.describe(request.path_params["reset_id"]))
        except ResetError as exc:
            return _error(404, str(exc))

    def guard(handler: Handler) -> Handler:
        return authenticated(token, handler)

    return [
        Route("/-/api/resets", guard(create_reset), methods=["POST"]),
        Route("/-/api/resets", guard(list_resets), methods=["GET"]),
        Route("/-/api/resets/{reset_id}", guard(show_reset), methods=["GET"]),
    ]
