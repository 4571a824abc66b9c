"""The ``gunrelay`` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from typing import Any

from .config import SETTINGS, load_config


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the relay")
    for setting in SETTINGS:
        serve.add_argument(setting.option, dest=setting.name, type=setting.type, default=None,
                           help=f"{setting.help} (env {setting.env}, default {setting.default!r})")


def uvicorn_config(app: Any, config: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=config.log_level.lower(),
        ws="gunrelay.server.wsprotocol:LeanWebSocketProtocol",
        # frames up to max_frame_bytes are ours to refuse with an error reply; past twice that the
        # websocket layer closes the connection (1009) before buffering more
        ws_max_size=max(2 * config.max_frame_bytes, 1 << 20),
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from .app import build_app

    config = load_config(vars(args))
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(config)
    # bind first so that port 0 resolves and the address we print is the real one
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        raise SystemExit(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn_config(app, config))
    shown = f"[{host}]" if ":" in host else host
    print(f"gunrelay listening on http://{shown}:{port} (GUN websocket at ws://{shown}:{port}/gun, "
          f"storage {config.storage} in {config.data})", flush=True)
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down cleanly; that is a normal exit here
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    server.run(sockets=[sock])


def _exit_cleanly(signum: int, frame: Any) -> None:
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gunrelay", description="A GUN relay with durable storage and resets that stick.")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)
    else:  # pragma: no cover - argparse already refuses unknown commands
        parser.print_help()
        sys.exit(2)
