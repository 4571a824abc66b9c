"""The operator's commands (``gunrelay reset``, ``bans``, ``rotate``, ``ttl``, ``snapshot``...) over the
admin API: against a running relay over HTTP (``--url``), or in-process on a stopped relay's data
folder (``--data`` alone), which is the old "stop the server, delete radata, restart" recipe done
safely: the same fence, purge, record and history, and a lock that refuses to touch a store a
running relay holds. Long steps show progress bars on stderr. ``export``, ``import jsonl`` and
``import radata`` (docs/interchange.md) work offline on the started application's interchange
directly (an export streams page by page, which an in-process HTTP call would buffer whole), or
with ``--url`` through a running relay's ``GET /-/api/export`` and ``POST /-/api/import``, streamed
both ways. ``migrate`` moves a stopped relay's store to another backend (``server/migrate.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from tqdm import tqdm

from .app import RadFolder, local_token_files, migrate_stores
from .core.errors import LocalError, OperatorError

DEFAULT_URL = "http://127.0.0.1:8765"


class RelayUnreachable(LocalError):
    """The relay named by --url does not answer."""


class Session:
    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RelayUnreachable(f"cannot reach the relay: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                detail = response.text
            raise OperatorError(f"relay refused ({response.status_code}): {detail}")
        return response.json()


def _token(args: argparse.Namespace) -> str:
    """--token, $GUNRELAY_ADMIN_TOKEN, the token file of --data, or the one a local relay on that
    port registered when it started, or ./gunrelay-data's."""
    token = args.token or os.environ.get("GUNRELAY_ADMIN_TOKEN")
    if token:
        return str(token)
    url = urllib.parse.urlsplit(args.url or DEFAULT_URL)
    local_port = (url.port or 80) if url.hostname in ("127.0.0.1", "localhost", "::1") else None
    candidates = local_token_files(args.data or os.environ.get("GUNRELAY_DATA"), local_port)
    for path in candidates:
        try:
            return path.read_text().strip()
        except OSError:
            continue
    tried = ", ".join(str(p) for p in candidates)
    raise OperatorError(f"no operator token: pass --token, set GUNRELAY_ADMIN_TOKEN, or --data DIR (tried {tried})")


@asynccontextmanager
async def session(args: argparse.Namespace) -> AsyncIterator[Session]:
    if args.url or not args.data:
        headers = {"Authorization": f"Bearer {_token(args)}"}
        async with httpx.AsyncClient(base_url=(args.url or DEFAULT_URL).rstrip("/"), headers=headers, timeout=600) as client:
            yield Session(client)
        return
    async with offline_app(args.data) as app:
        headers = {"Authorization": f"Bearer {app.state.token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offline", headers=headers, timeout=600) as client:
            yield Session(client)


@asynccontextmanager
async def offline_app(data: str) -> AsyncIterator[Any]:
    """The relay's own application, in this process, on a stopped relay's data folder, started
    (store open, fences reinstated) and holding the folder's lock, or refused."""
    from .app import build_app
    from .config import load_config

    app = build_app(load_config({"data": data, "log_level": "warning"}))
    async with app.app.router.lifespan_context(app.app):  # takes the data folder's lock, or refuses
        yield app


def _show(result: Any) -> None:
    print(json.dumps(result, indent=2))


async def wait_for_purge(s: Session, reset_id: str) -> Any:
    """Follow a reset's purge and publication with a progress bar (no count first: the fence must
    not wait for a scan of the store)."""
    with tqdm(desc="purged", unit="field", file=sys.stderr) as bar:
        while True:
            status = await s.call("GET", f"/-/api/resets/{reset_id}")
            bar.n = status["purge"]["fields_removed"]
            bar.refresh()
            if status["published"]:
                return status
            await asyncio.sleep(0.2)


async def wait_for_acks(s: Session, reset_id: str, seconds: float) -> Any:
    """Until every connected peer acknowledged or time is up, with a progress bar."""
    deadline = time.monotonic() + seconds
    with tqdm(desc="acknowledged", unit="peer", file=sys.stderr) as bar:
        while True:
            status = await s.call("GET", f"/-/api/resets/{reset_id}")
            done, missing = len(status["acknowledged"]), len(status["connected_not_acknowledged"])
            bar.total, bar.n = done + missing, done
            bar.refresh()
            if missing == 0 or time.monotonic() >= deadline:
                return status
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


async def reset(s: Session, args: argparse.Namespace) -> None:
    keep = [k for k in args.keep.split(",") if k]
    body: dict[str, Any] = {"scope": args.scope, "reason": args.reason, "message": args.message, "keep": keep}
    if args.dry_run:
        _show(await s.call("POST", "/-/api/resets", {**body, "dry_run": True}))
        return
    if args.ban_connected:
        body["ban_connected"] = args.ban_connected
    if args.snapshot:
        body["snapshot"] = True
    result = await s.call("POST", "/-/api/resets", body)
    _show(result)
    reset_id = result["record"]["reset_id"]
    await wait_for_purge(s, reset_id)
    if args.wait_acks:
        status = await wait_for_acks(s, reset_id, args.wait_acks)
        missing = status["connected_not_acknowledged"]
        print(f"{len(status['acknowledged'])} acknowledged, {len(missing)} connected peer(s) did not", file=sys.stderr)
    if args.quarantine:
        _show(await s.call("POST", f"/-/api/resets/{reset_id}/quarantine", {"duration": args.quarantine}))


async def resets(s: Session, args: argparse.Namespace) -> None:
    _show(await s.call("GET", "/-/api/resets" + (f"/{args.reset_id}" if args.reset_id else "")))


async def mesh(s: Session, args: argparse.Namespace) -> None:
    _show(await s.call("GET", "/-/api/mesh"))


async def ban(s: Session, args: argparse.Namespace) -> None:
    if bool(args.address) == bool(args.connected):
        raise OperatorError("give an address or --connected (not both)")
    body: dict[str, Any] = {"duration": args.duration, "reason": args.reason}
    body.update({"connected": True} if args.connected else {"address": args.address})
    _show(await s.call("POST", "/-/api/bans", body))


async def unban(s: Session, args: argparse.Namespace) -> None:
    _show(await s.call("DELETE", "/-/api/bans/" + urllib.parse.quote(args.address, safe="")))


async def bans(s: Session, args: argparse.Namespace) -> None:
    _show(await s.call("GET", "/-/api/bans"))


async def rotate(s: Session, args: argparse.Namespace) -> None:
    body = {"scope": args.scope, "to": args.to, "grace": args.grace, "reason": args.reason, "message": args.message}
    _show(await s.call("POST", "/-/api/rotations", body))


async def ttl(s: Session, args: argparse.Namespace) -> None:
    if args.action == "list":
        _show(await s.call("GET", "/-/api/ttl"))
    elif args.action == "set":
        if not (args.prefix and args.duration):
            raise OperatorError("usage: gunrelay ttl set PREFIX DURATION")
        _show(await s.call("POST", "/-/api/ttl", {"prefix": args.prefix, "ttl": args.duration}))
    else:
        if not args.prefix:
            raise OperatorError("usage: gunrelay ttl rm PREFIX")
        _show(await s.call("DELETE", "/-/api/ttl?prefix=" + urllib.parse.quote(args.prefix, safe="")))


async def snapshot(s: Session, args: argparse.Namespace) -> None:
    if args.action == "list":
        _show(await s.call("GET", "/-/api/snapshots"))
    elif args.action == "create":
        _show(await s.call("POST", "/-/api/snapshots", {"label": args.label}))
    elif not args.name:
        raise OperatorError(f"usage: gunrelay snapshot {args.action} NAME")
    elif args.action == "delete":
        _show(await s.call("DELETE", f"/-/api/snapshots/{args.name}"))
    else:
        _show(await s.call("POST", f"/-/api/snapshots/{args.name}/restore", {"reason": args.reason, "message": args.message}))


STORE_FILE = "gunrelay.sqlite3"


def _data_folder(args: argparse.Namespace) -> str:
    return str(args.data or os.environ.get("GUNRELAY_DATA") or "./gunrelay-data")


@asynccontextmanager
async def _relay_client(args: argparse.Namespace) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the running relay at --url, with the operator token; no read timeout
    (an import answers once every line is merged, an export streams as long as the store is)."""
    headers = {"Authorization": f"Bearer {_token(args)}"}
    timeout = httpx.Timeout(30, read=None, write=None)
    async with httpx.AsyncClient(base_url=args.url.rstrip("/"), headers=headers, timeout=timeout) as client:
        yield client


async def _refused(response: httpx.Response) -> OperatorError:
    await response.aread()
    try:
        detail = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        detail = response.text
    return OperatorError(f"relay refused ({response.status_code}): {detail}")


async def export_live(args: argparse.Namespace) -> None:
    """A running relay's store as JSON lines, through ``GET /-/api/export``."""
    target = Path(args.out) if args.out and args.out != "-" else None
    partial = target.with_name(target.name + ".partial") if target else None
    try:
        async with _relay_client(args) as client, client.stream("GET", "/-/api/export") as response:
            if response.status_code >= 400:
                raise await _refused(response)
            out = open(partial, "wb") if partial else sys.stdout.buffer
            try:
                with tqdm(desc="exported", unit="B", unit_scale=True, file=sys.stderr, disable=partial is None) as bar:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        bar.update(len(chunk))
                out.flush()
                if partial:
                    os.fsync(out.fileno())
            finally:
                if partial:
                    out.close()
    except httpx.HTTPError as exc:
        if partial:
            partial.unlink(missing_ok=True)
        raise RelayUnreachable(f"cannot reach the relay: {exc}") from None
    except BaseException:
        if partial:
            partial.unlink(missing_ok=True)
        raise
    if target and partial:
        os.replace(partial, target)
        print(f"exported to {target}", file=sys.stderr)


async def import_live(args: argparse.Namespace, lines: AsyncIterator[str] | Iterator[str]) -> dict[str, Any]:
    """Send gunrelay-jsonl lines to a running relay's ``POST /-/api/import``; its report."""
    async def body() -> AsyncIterator[bytes]:
        buffered: list[str] = []
        size = 0
        async for line in _each_line(lines):
            buffered.append(line)
            size += len(line)
            if size >= 1 << 16:
                yield "".join(buffered).encode()
                buffered, size = [], 0
        if buffered:
            yield "".join(buffered).encode()

    query = "?dry_run=true" if args.dry_run else ""
    try:
        async with _relay_client(args) as client:
            response = await client.post("/-/api/import" + query, content=body(), headers={"Content-Type": "application/x-ndjson"})
    except httpx.HTTPError as exc:
        raise RelayUnreachable(f"cannot reach the relay: {exc}") from None
    if response.status_code >= 400:
        raise await _refused(response)
    result: dict[str, Any] = response.json()
    return result


async def _each_line(lines: AsyncIterator[str] | Iterator[str]) -> AsyncIterator[str]:
    if isinstance(lines, Iterator):
        for line in lines:
            yield line if line.endswith("\n") else line + "\n"
    else:
        async for line in lines:
            yield line if line.endswith("\n") else line + "\n"


async def export(args: argparse.Namespace) -> None:
    """Every field and reset of a stopped relay's store as JSON lines (docs/interchange.md); with
    --url, of a running relay's."""
    if args.url:
        await export_live(args)
        return
    data = _data_folder(args)
    if not (Path(data) / STORE_FILE).is_file():
        raise OperatorError(f"no relay store in {data} (no {STORE_FILE})")
    async with offline_app(data) as app:
        if not args.out or args.out == "-":
            out = sys.stdout.buffer
            await app.state.interchange.export(lambda text: out.write(text.encode()))
            out.flush()
            return
        target = Path(args.out)
        partial = target.with_name(target.name + ".partial")  # complete or absent: renamed at the end
        total = (await app.state.store.stats()).fields
        try:
            with open(partial, "wb") as out, tqdm(desc="exported", unit="field", total=total, file=sys.stderr) as bar:
                def progress(done: int) -> None:
                    bar.n = done
                    bar.refresh()

                written = await app.state.interchange.export(lambda text: out.write(text.encode()), progress)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise LocalError(f"cannot write {target}: {exc}") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        print(f"{written} fields written to {target}", file=sys.stderr)


def _lines(source: BinaryIO, progress: Callable[[int], None]) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 comes out as one no parser accepts."""
    read = 0
    for raw in source:
        read += len(raw)
        progress(read)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield "\x00 not UTF-8"


async def import_jsonl(args: argparse.Namespace) -> None:
    """Load an export into a stopped relay's data folder: resets first, then fields by HAM; with
    --url, its fields into a running relay."""
    if args.url is None and args.data is None:
        raise OperatorError("give --data DIR (a STOPPED relay's folder) or --url URL (a running relay)")
    try:
        source: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as exc:
        raise LocalError(f"cannot read {args.file}: {exc}") from None
    size = None if args.file == "-" else os.fstat(source.fileno()).st_size
    try:
        if args.url:
            with tqdm(desc="sent", unit="B", unit_scale=True, total=size, file=sys.stderr) as bar:
                def sent(done: int) -> None:
                    if done - bar.n >= 1 << 20 or done == size:
                        bar.n = done
                        bar.refresh()

                result = await import_live(args, _lines(source, sent))
            _report_malformed(args.file, result)
            return
        async with offline_app(args.data) as app:
            with tqdm(desc="imported", unit="B", unit_scale=True, total=size, file=sys.stderr) as bar:
                def progress(done: int) -> None:
                    if done - bar.n >= 1 << 20 or done == size:
                        bar.n = done
                        bar.refresh()

                report = await app.state.interchange.import_lines(_lines(source, progress), dry_run=args.dry_run)
                bar.n = bar.total or bar.n
                bar.refresh()
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    _report_malformed(args.file, report.as_json())


def _report_malformed(name: str, result: dict[str, Any]) -> None:
    for number in result["malformed_lines"]:
        print(f"{name}:{number}: malformed line skipped", file=sys.stderr)
    _show(result)


async def import_radata(args: argparse.Namespace) -> None:
    """A stopped Node GUN relay's RAD folder, every field merged by HAM through the import's checks:
    into a stopped relay's data folder (--data), or a running relay (--url)."""
    if args.url is None and args.data is None:
        raise OperatorError("give --data DIR (a STOPPED relay's folder) or --url URL (a running relay)")
    folder = RadFolder(Path(args.path), dry_run=args.dry_run)
    with tqdm(desc="RAD files", unit="file", total=len(folder.files), file=sys.stderr) as bar:
        def skipped(path: Path, reason: str) -> None:
            bar.write(f"{path}: skipped ({reason})", file=sys.stderr)

        entries = folder.entries(skipped, lambda path: bar.update(1))
        if args.url:
            folder.add_live_result(await import_live(args, folder.lines(entries)))
        else:
            async with offline_app(args.data) as app:
                await app.state.interchange.import_entries(entries, folder.report)
    result = folder.report.as_json()
    for where in result["malformed_entries"]:
        print(f"{where}: not a field, skipped", file=sys.stderr)
    _show(result)


async def import_command(args: argparse.Namespace) -> None:
    await (import_radata(args) if args.format == "radata" else import_jsonl(args))


async def migrate(args: argparse.Namespace) -> None:
    """Copy a stopped relay's whole store to another backend (``server/migrate.py``), with
    progress bars for the copy and the field-by-field verification, then a summary."""
    @contextmanager
    def bar(desc: str, total: int) -> Iterator[Callable[[int], None]]:
        with tqdm(desc=desc, unit="field", total=total, file=sys.stderr) as shown:
            yield shown.update

    report = await migrate_stores(args.source, args.target, dry_run=args.dry_run, merge=args.merge, progress_factory=bar)
    _show(report.as_json())


COMMANDS = {
    "reset": reset, "resets": resets, "ban": ban, "unban": unban, "bans": bans,
    "rotate": rotate, "ttl": ttl, "snapshot": snapshot, "mesh": mesh,
}
OFFLINE_COMMANDS = {"export": export, "import": import_command, "migrate": migrate}  # the data folder itself, or --url's streaming routes


def run_operator_command(args: argparse.Namespace) -> None:
    async def run() -> None:
        if args.command in OFFLINE_COMMANDS:
            await OFFLINE_COMMANDS[args.command](args)
            return
        async with session(args) as s:
            await COMMANDS[args.command](s, args)

    asyncio.run(run())
