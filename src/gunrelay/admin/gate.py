"""The door every admin API request passes: who is calling (``auth``), then the handler, then the
audit log for anything that changes state. Also the API's conventions for reading bodies and
answering errors: a 4xx with ``{"error": "..."}``, and a refused request changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.duration import parse_duration
from ..core.errors import OperatorError, RemoteError
from ..server.audit import Audit
from .auth import STATE_CHANGING, Caller, ConsoleAuth, Refused

MAX_BODY = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(RemoteError):
    """The request cannot be carried out as given (400); nothing was changed. ``reason`` labels it
    in ``gunrelay_admin_refused_total``."""

    def __init__(self, text: str, reason: str = "bad_request"):
        super().__init__(text)
        self.reason = reason


def error(status: int, text: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": text, **extra}, status_code=status)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def caller(request: Request) -> Caller:
    found: Caller = request.state.caller
    return found


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object (at most ``MAX_BODY`` bytes); kept for the audit log."""
    declared = (request.headers.get("content-length") or "").lstrip("0")
    if declared.isascii() and declared.isdigit() and (len(declared) > len(str(MAX_BODY)) or int(declared) > MAX_BODY):
        raise BadRequest(f"request body over {MAX_BODY} bytes", reason="body_too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes", reason="body_too_large")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequest("request body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    request.state.body = data
    return data


def text(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string")
    return value


def flag(data: dict[str, Any], name: str) -> bool:
    """An optional true or false (null or absent: false); anything else is refused rather than guessed."""
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false")
    return value


def duration(data: dict[str, Any], name: str) -> float | None:
    """An optional duration ("10m", "1d", seconds) in seconds, or None when not given."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str) and not value.strip().isascii():  # parse_duration's \d would read "١h" as an hour
        raise BadRequest(f"'{name}': not a duration: {value!r} (use e.g. 90, 90s, 5m, 2h, 7d)")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"'{name}': {exc}") from None


class Gate:
    def __init__(self, auth: ConsoleAuth, audit: Audit):
        self.auth = auth
        self.audit = audit

    def route(self, method: str, path: str, handler: Handler, action: str | None = None) -> Route:
        """``handler`` behind the door; a state-changing route needs an ``action`` name for the audit log."""
        changes = method in STATE_CHANGING
        assert not changes or action, f"{method} {path} changes state: name its action for the audit log"

        async def guarded(request: Request) -> Response:
            address = client_address(request)
            try:
                request.state.caller = await self.auth.identify(method, request.headers, request.cookies, address)
            except Refused as refused:
                return error(refused.status, str(refused))
            if not changes:
                return await self._run(handler, request)
            status = 500  # a bug in the handler is an action that ended in error: audited, then raised
            try:
                response = await self._run(handler, request)
                status = response.status_code
                return response
            finally:
                # the path says what was acted on: neither the body nor the query may mask it
                detail = {**getattr(request.state, "body", {}), **request.query_params, **request.path_params}
                await self.audit.record(caller(request).who, address, action or path, detail, status)

        return Route(path, guarded, methods=[method])

    async def _run(self, handler: Handler, request: Request) -> Response:
        try:
            return await handler(request)
        except (BadRequest, OperatorError) as exc:
            counters = self.auth.counters
            counters.count(counters.refused, exc.reason if isinstance(exc, BadRequest) else "bad_request")
            return error(400, str(exc))


def one_route_per_path(routes: list[Route]) -> list[Route]:
    """Routes of the same path joined into one, so that a method the path does not take is answered
    405 with an ``Allow`` header naming every method it does take (Starlette names only one route's)."""
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)
    joined = []
    for path, group in by_path.items():
        if len(group) == 1:
            joined.append(group[0])
            continue
        endpoints: dict[str, Handler] = {method: route.endpoint for route in group for method in route.methods or ()}

        async def dispatch(request: Request, endpoints: dict[str, Handler] = endpoints) -> Response:
            return await endpoints[request.method](request)

        joined.append(Route(path, dispatch, methods=sorted(endpoints)))
    return joined


def required_duration(data: dict[str, Any], name: str, example: str) -> float:
    seconds = duration(data, name)
    if seconds is None:
        raise BadRequest(f"'{name}' is required, e.g. \"{example}\"")
    return seconds
