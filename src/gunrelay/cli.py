"""The ``gunrelay`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from typing import Any

from .config import SETTINGS, InvalidSetting, load_config
from .core.errors import GunrelayError


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the relay")
    for setting in SETTINGS:
        choices = setting.choices or (("on", "off") if setting.type is bool else ())
        told = f"one of {', '.join(choices)}; " if choices else ""
        default = ("on" if setting.default else "off") if setting.type is bool else repr(setting.default)
        # read as text: load_config checks and converts it (a switch is on/off, not Python's bool())
        serve.add_argument(setting.option, dest=setting.name, type=str if setting.type is bool else setting.type, default=None,
                           action="append" if setting.repeat else "store",
                           help=f"{setting.help} ({told}env {setting.env}, default {default})")


def serve(args: argparse.Namespace, argv: list[str]) -> None:
    import uvicorn

    from .app import WORKER_ENV, build_app, note_local_relay, uvicorn_config

    try:
        config = load_config(vars(args))
    except InvalidSetting as exc:
        raise SystemExit(f"gunrelay serve: {exc}") from None
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.workers > 1:
        raise SystemExit(serve_workers(config, argv))
    app = build_app(config)
    # bind first so that port 0 resolves and the address we print is the real one; IPPROTO_TCP named
    # explicitly, because plain asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
    # (uvloop, the default with uvicorn[standard], sets it either way)
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if os.environ.get(WORKER_ENV):  # one of `--workers N`: the port is shared with the others
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        raise SystemExit(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    sock.listen(2048)  # before "listening on" is printed: a connect from then on waits in the backlog, never refused
    host, port = sock.getsockname()[:2]
    app.state.data_lock.acquire()  # one process per data folder: refused here with a clear message
    note_local_relay(app, port)
    if app.state.fleet is not None:
        app.state.fleet.control.port = port  # its heartbeat says where it listens
    server = uvicorn.Server(uvicorn_config(app, config))
    # A signal from here until uvicorn has taken SIGTERM/SIGINT over (as it starts)
    # asks it to stop as soon as it can; uvicorn re-raises the signal once it has shut down cleanly,
    # which is then a normal exit. (Raising SystemExit here instead could land in whatever code the
    # signal interrupts, e.g. a weakref callback that swallows it, and the relay would not stop.)
    def stop(signum: int, frame: Any) -> None:
        server.should_exit = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    app.state.start.exit = lambda: setattr(server, "should_exit", True)  # a start that failed after serving began
    shown = f"[{host}]" if ":" in host else host
    http, ws = ("https", "wss") if config.tls_cert else ("http", "ws")
    print(f"gunrelay listening on {http}://{shown}:{port} (GUN websocket at {ws}://{shown}:{port}/gun, "
          f"storage {config.storage} in {config.data})", flush=True)
    server.run(sockets=[sock])
    if app.state.start.fatal:
        raise SystemExit(f"gunrelay serve: {app.state.start.fatal}")


def serve_workers(config: Any, argv: list[str]) -> int:
    """``--workers N``: a parent that runs N relay processes on one port (``server/workers.py``)."""
    from .app import Workers, prepare_data_folder, reserve_port

    prepare_data_folder(config)
    try:
        reserved = reserve_port(config.host, config.port)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    try:
        return Workers(argv, config.workers, reserved.getsockname()[1]).run()
    finally:
        reserved.close()


def _operator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="the running relay (default http://127.0.0.1:8765)")
    parser.add_argument("--token", default=None, help="operator token (default: $GUNRELAY_ADMIN_TOKEN, else DATA/admin-token)")
    parser.add_argument(
        "--data",
        default=None,
        help="with --url: where to find a local relay's token; without --url: work directly on this STOPPED relay's store",
    )


def _reset_parsers(sub: Any) -> None:
    reset = sub.add_parser("reset", help="reset a scope: fence, purge, publish a signed record")
    _operator_options(reset)
    reset.add_argument("--scope", default="*", help="'*' (everything but the relay's own space) or a soul prefix")
    reset.add_argument("--reason", default="", help="why (kept in the record and the history)")
    reset.add_argument("--message", default="", help="what clients show their users")
    reset.add_argument("--keep", default="", help="comma-separated local keys cooperating clients keep")
    reset.add_argument("--dry-run", action="store_true", help="report what would be removed; change nothing")
    reset.add_argument("--wait-acks", type=float, metavar="SECONDS", help="wait until every connected peer acknowledged, at most this long")
    reset.add_argument("--quarantine", metavar="DURATION", help="then ban the addresses of peers that did not acknowledge (e.g. 10m)")
    reset.add_argument("--ban-connected", metavar="DURATION", help="ban every address connected at reset time (the old 5-minute block)")
    reset.add_argument("--snapshot", action="store_true", help="take a snapshot first")
    ban = sub.add_parser("ban", help="ban an address (or every connected one) for a while")
    _operator_options(ban)
    ban.add_argument("address", nargs="?", help="the address; omit with --connected")
    ban.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="e.g. 90s, 5m, 2h, 7d")
    ban.add_argument("--connected", action="store_true", help="ban every currently connected address")
    ban.add_argument("--reason", default="")
    unban = sub.add_parser("unban", help="lift a ban")
    _operator_options(unban)
    unban.add_argument("address")
    bans = sub.add_parser("bans", help="list active bans")
    _operator_options(bans)
    rotate = sub.add_parser("rotate", help="start a scope afresh under a new name; the old one turns read-only")
    _operator_options(rotate)
    rotate.add_argument("scope", help="the old soul prefix")
    rotate.add_argument("to", help="the new soul prefix (published as the replacement and config.instance)")
    rotate.add_argument("--grace", default="1d", help="purge the old scope after this long (default %(default)s)")
    rotate.add_argument("--reason", default="")
    rotate.add_argument("--message", default="")
    snapshot = sub.add_parser("snapshot", help="snapshots: list, create [--label L], delete NAME, restore NAME")
    _operator_options(snapshot)
    snapshot.add_argument("action", choices=["list", "create", "delete", "restore"])
    snapshot.add_argument("name", nargs="?")
    snapshot.add_argument("--label", default="")
    snapshot.add_argument("--reason", default="")
    snapshot.add_argument("--message", default="")
    ttl = sub.add_parser("ttl", help="time-to-live rules: list, set PREFIX DURATION, or rm PREFIX")
    _operator_options(ttl)
    ttl.add_argument("action", choices=["list", "set", "rm"])
    ttl.add_argument("prefix", nargs="?")
    ttl.add_argument("duration", nargs="?")
    resets = sub.add_parser("resets", help="history of resets, or one reset's acknowledgements and purge")
    _operator_options(resets)
    resets.add_argument("reset_id", nargs="?", help="show this reset in detail")
    mesh = sub.add_parser("mesh", help="the links to other relays: dialled (--peer) and inbound, their state and last error")
    _operator_options(mesh)


def _interchange_parsers(sub: Any) -> None:
    export = sub.add_parser("export", help="write a relay's whole store as JSON lines (docs/interchange.md)")
    export.add_argument("--data", default=None, help="the STOPPED relay's data folder (default $GUNRELAY_DATA, else ./gunrelay-data)")
    export.add_argument("--url", default=None, help="instead: the running relay (e.g. http://127.0.0.1:8765), through its API")
    export.add_argument("--token", default=None, help="with --url: operator token (default: $GUNRELAY_ADMIN_TOKEN, else DATA/admin-token)")
    export.add_argument("--out", default=None, metavar="FILE", help="write here (complete or not at all) instead of stdout")
    load = sub.add_parser("import", help="load an export (jsonl) or a Node GUN relay's RAD folder (radata) into a relay")
    formats = load.add_subparsers(dest="format", required=True)
    jsonl = formats.add_parser("jsonl", help="a gunrelay-jsonl file: resets and fences first, then every field by HAM")
    jsonl.add_argument("file", metavar="FILE", help="the export ('-': stdin)")
    radata = formats.add_parser("radata", help="a STOPPED Node GUN relay's RAD folder (npm gun's default storage): every field by HAM")
    radata.add_argument("path", metavar="PATH", help="the RAD folder (the Node relay's `file` option, 'radata' by default)")
    for each in (jsonl, radata):
        each.add_argument("--data", default=None, help="the STOPPED relay's data folder to load into (created if missing)")
        each.add_argument("--url", default=None, help="instead: the running relay, through its API (fields only; its live fence and HAM apply)")
        each.add_argument("--token", default=None, help="with --url: operator token (default: $GUNRELAY_ADMIN_TOKEN, else DATA/admin-token)")
        each.add_argument("--dry-run", action="store_true", help="count what would be imported, kept out or refused; write nothing")


def _migrate_parser(sub: Any) -> None:
    migrate = sub.add_parser(
        "migrate", help="copy a STOPPED relay's whole store to another backend (SQLite <-> PostgreSQL), then verify it",
        description="Copy every field with its exact state, the resets with their fences and purge state, acks, bans, "
        "TTL rules, stream cursors and the audit log from one store to another, a page at a time; then compare "
        "both stores table by table and field by field. Refused while a relay uses either store. "
        "The data folder's other files (the relay's identity, token, snapshots) stay where they are.",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="SRC",
                         help="sqlite:DIR (a data folder holding gunrelay.sqlite3) or a postgresql:// URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="DST",
                         help="sqlite:DIR or a postgresql:// URL; must hold no graph data unless --merge")
    migrate.add_argument("--merge", action="store_true", help="the target may hold data: merge into it by HAM (resets it knows are kept)")
    migrate.add_argument("--dry-run", action="store_true", help="check every refusal and count the source; write nothing")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gunrelay", description="A GUN relay with durable storage and resets that stick.")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _reset_parsers(sub)
    _interchange_parsers(sub)
    _migrate_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(args, list(sys.argv[1:] if argv is None else argv))
            return
        from .remote import run_operator_command

        run_operator_command(args)
    except GunrelayError as exc:  # the one place that exits: every error below says what went wrong
        raise SystemExit(str(exc)) from None
