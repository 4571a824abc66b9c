"""The web console's files (``/-/console``): one page, one script, one stylesheet, under a strict
Content-Security-Policy, so that nothing but our own script runs in the operator's session.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
FILES = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _serve(name: str, media_type: str) -> Response:
    path = CONSOLE_DIR / name
    if not path.is_file():
        return PlainTextResponse(f"{name} is missing from this installation of gunrelay.", 404)
    return FileResponse(path, media_type=media_type, headers=HEADERS)


async def page(request: Request) -> Response:
    return _serve("index.html", "text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:  # a fixed list: no path from the request reaches the file system
        return PlainTextResponse("Not found.", 404)
    return _serve(name, FILES[name])


def routes() -> list[Route]:
    return [
        Route("/-/console", page),
        Route("/-/console/", page),
        Route("/-/console/{name}", asset),
    ]
