"""Logging in and out of the console: ``/-/api/login``, ``/-/api/session``, ``/-/api/logout``.

A login is refused from an address outside ``--admin-allow``, from another origin (a page on
another site posting to us), while locked out, or with a wrong user or password; each login and
refused login is written to the audit log (attempts during a lockout are only counted in metrics,
so a flood cannot grow the log).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.privacy import Privacy
from ..server.audit import Audit
from .auth import ConsoleAuth, Refused, Session
from .gate import BadRequest, Gate, caller, client_address, error, json_body, text


def _secure(request: Request) -> bool:
    # the scheme the client used: https when the relay serves TLS, or when a trusted proxy says so
    # (``--trusted-proxies``, read by the connection guard); a header from anyone else is not believed
    return request.url.scheme == "https"


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form or fetch (those always send Origin on POST)
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def routes(auth: ConsoleAuth, audit: Audit, privacy: Privacy, gate: Gate) -> list[Route]:
    def session_json(session: Session) -> dict[str, object]:
        return {"user": session.user, "csrf": session.csrf, "expires": session.expires * 1000, "privacy": privacy.enabled}

    async def login(request: Request) -> Response:
        address = client_address(request)
        if not _same_origin(request):
            auth.counters.count(auth.counters.refused, "cross_origin")
            return error(403, "cross-origin login refused")
        try:
            data = await json_body(request)
            user, password = text(data, "user", "admin"), text(data, "password")
        except BadRequest as exc:
            return error(400, str(exc))
        try:
            session = await auth.login(user, password, address)
        except Refused as refused:
            if refused.status == 429:
                return error(429, str(refused), retry_after_s=round(refused.retry_after_s or 0))
            await audit.record(user, address, "login", {"user": user, "why": str(refused)}, refused.status)
            return error(refused.status, str(refused))
        await audit.record(user, address, "login", {"user": user}, 200)
        response = JSONResponse(session_json(session))
        response.headers["set-cookie"] = auth.cookie(session, _secure(request))
        return response

    async def current(request: Request) -> Response:
        session = caller(request).session
        if session is None:
            return error(400, "the operator token has no console session")
        return JSONResponse(session_json(session))

    async def logout(request: Request) -> Response:
        session = caller(request).session
        if session is not None:
            await auth.logout(session)
        response = JSONResponse({"logged_out": True})
        response.headers["set-cookie"] = auth.cookie(None, _secure(request))
        return response

    return [
        Route("/-/api/login", login, methods=["POST"]),
        gate.route("GET", "/-/api/session", current),
        gate.route("POST", "/-/api/logout", logout, "logout"),
    ]
