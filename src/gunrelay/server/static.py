"""Serving GunJS's own browser bundles (``/gun.js``, ``/gun/sea.js``...) from the npm package.

The Node relay does this so pages can load ``<script src="/gun.js">``; we do it when the npm
``gun`` package is installed (``--gun-dir``, or ``node_modules/gun`` in the working folder or one
above it). Paths are resolved inside the package folder only.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

CORS = {"Access-Control-Allow-Origin": "*"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".json": "application/json", ".map": "application/json"}


def find_gun_dir(configured: str, start: Path | None = None) -> Path | None:
    if configured:
        path = Path(configured)
        return path if (path / "gun.js").is_file() else None
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "node_modules" / "gun"
        if (path / "gun.js").is_file():
            return path
    return None


class GunFiles:
    def __init__(self, gun_dir: Path | None):
        self.gun_dir = gun_dir.resolve() if gun_dir else None

    def gun_version(self) -> str | None:
        """The npm gun package's version, when it is installed."""
        if self.gun_dir is None:
            return None
        try:
            version = json.loads((self.gun_dir / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            return None
        return version if isinstance(version, str) else None

    def _file(self, relative: str) -> Response:
        if self.gun_dir is None:
            return PlainTextResponse(
                "The npm gun package is not installed where the relay can see it (see --gun-dir).", 404, headers=CORS
            )
        target = (self.gun_dir / relative).resolve()
        if not target.is_relative_to(self.gun_dir) or not target.is_file():
            return PlainTextResponse("Not found.", 404, headers=CORS)
        media_type = _TYPES.get(target.suffix, "application/octet-stream")
        return FileResponse(target, media_type=media_type, headers=CORS)

    async def gun_js(self, request: Request) -> Response:
        return self._file("gun.js")

    async def sea_js(self, request: Request) -> Response:
        return self._file("sea.js")

    async def package_file(self, request: Request) -> Response:
        return self._file(request.path_params["path"])


CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"


def _client_file(name: str, media_type: str, headers: dict[str, str] | None = None) -> Response:
    path = CLIENT_DIR / name
    if not path.is_file():
        return PlainTextResponse(f"{name} is missing from this installation of gunrelay.", 404, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


async def plugin_js(request: Request) -> Response:
    """The reset plugin for stock GunJS (``gunrelay.install(gun, {...})``)."""
    return _client_file("gunrelay.js", _TYPES[".js"], CORS)


async def demo_page(request: Request) -> Response:
    """The demo chat: rooms, messages, a visible reset notice."""
    return _client_file("demo.html", "text/html; charset=utf-8")
