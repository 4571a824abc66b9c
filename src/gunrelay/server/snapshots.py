"""Snapshots of the graph: create (consistent, while serving), list, delete, restore.

A snapshot is written to a temporary file and renamed into ``DATA/snapshots/<name>.sqlite3`` only
when complete, so it is whole or absent (``FileShelf``); on PostgreSQL it is written into the
database in one transaction (``DatabaseShelf``), so every process of a fleet, on any machine, has it. Names are generated (UTC time plus an optional label) and
checked against one pattern before any file operation, so a request can never reach outside the
folder. A restore replaces every field with the snapshot's, undoes the resets issued after the
snapshot was taken (their fences would hide the restored data), and is itself a record: kind
``restore`` with W = now over ``*``, published like a reset, so cooperating clients clear their
copies and re-read, and stale peers cannot push back what was written after the snapshot.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..storage.base import Store, StoreStats
from ..storage.postgres import PostgresStore
from ..core.errors import OperatorError
from .control import ResetControl, record_json

NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z(?:-[A-Za-z0-9_.-]{1,48})?$")
LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,48}$")
SUFFIX = ".sqlite3"


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    created: float  # seconds since the epoch
    bytes: int
    fields: int | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "bytes": self.bytes, "fields": self.fields}


class FileShelf:
    """Snapshots as files in ``DATA/snapshots`` (SQLite and memory: one process, one machine)."""

    def __init__(self, store: Store, folder: Path):
        self.store = store
        self.folder = folder

    def discard_partials(self) -> list[str]:
        if not self.folder.exists():
            return []
        gone = [path for path in self.folder.glob(".*.partial*")]
        gone += [path for path in self.folder.glob("*.json") if not path.with_suffix(SUFFIX).exists()]
        for path in gone:
            path.unlink(missing_ok=True)
        return [path.name for path in gone]

    def _path(self, name: str) -> Path:
        return self.folder / (name + SUFFIX)

    async def has(self, name: str) -> bool:
        return self._path(name).exists()

    async def put(self, name: str, created: float) -> SnapshotInfo:
        path = self._path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.partial"
        try:
            stats = await self.store.snapshot_to(partial)
            _fsync(partial)
            (self.folder / f"{name}.json").write_text(json.dumps({"created": created, "fields": stats.fields}))
            os.replace(partial, path)  # complete or absent
        finally:
            partial.unlink(missing_ok=True)
        return SnapshotInfo(name, created, path.stat().st_size, stats.fields)

    async def list(self) -> list[SnapshotInfo]:
        if not self.folder.exists():
            return []
        out = []
        for path in sorted(self.folder.glob("*" + SUFFIX)):
            name = path.name[: -len(SUFFIX)]
            if not NAME.fullmatch(name):
                continue
            meta = _meta(self.folder / f"{name}.json")
            out.append(SnapshotInfo(name, meta.get("created", path.stat().st_mtime), path.stat().st_size, meta.get("fields")))
        return out

    async def delete(self, name: str) -> None:
        path = self._path(name)
        if not path.exists():
            raise KeyError(name)
        path.unlink()
        (self.folder / f"{name}.json").unlink(missing_ok=True)

    async def created(self, name: str) -> float:
        path = self._path(name)
        if not path.exists():
            raise KeyError(name)
        return float(_meta(self.folder / f"{name}.json").get("created", path.stat().st_mtime))

    async def restore(self, name: str) -> StoreStats:
        return await self.store.restore_fields_from(self._path(name))


class DatabaseShelf:
    """Snapshots in the PostgreSQL database itself (``storage/postgres.py``: tables ``snapshots``
    and ``snapshot_fields``): every process of a fleet, on any machine, lists, restores and deletes
    every snapshot. One transaction writes a snapshot whole, so there are no partials."""

    def __init__(self, store: PostgresStore):
        self.store = store

    def discard_partials(self) -> list[str]:
        return []

    async def has(self, name: str) -> bool:
        return any(info.name == name for info in await self.list())

    async def put(self, name: str, created: float) -> SnapshotInfo:
        stats, size = await self.store.snapshot_into_database(name, created)
        return SnapshotInfo(name, created, size, stats.fields)

    async def list(self) -> list[SnapshotInfo]:
        return [SnapshotInfo(*row) for row in await self.store.database_snapshots()]

    async def delete(self, name: str) -> None:
        if not await self.store.delete_database_snapshot(name):
            raise KeyError(name)

    async def created(self, name: str) -> float:
        for info in await self.list():
            if info.name == name:
                return info.created
        raise KeyError(name)

    async def restore(self, name: str) -> StoreStats:
        return await self.store.restore_fields_from_database_snapshot(name)


class Snapshots:
    def __init__(self, store: Store, control: ResetControl, folder: Path):
        self.store = store
        self.control = control
        self.shelf: FileShelf | DatabaseShelf = DatabaseShelf(store) if isinstance(store, PostgresStore) else FileShelf(store, folder)

    def discard_partials(self) -> list[str]:
        """Remove what a crash left half-written (a partial file, a record of a snapshot never
        completed); called at start, before anything is listed."""
        return self.shelf.discard_partials()

    def _check(self, name: str) -> str:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise OperatorError(f"not a snapshot name: {name!r}")
        return name

    async def create(self, label: str = "") -> SnapshotInfo:
        if label and not LABEL.fullmatch(label):
            raise OperatorError("a snapshot label is 1-48 letters, digits, '.', '_' or '-'")
        created = time.time()
        name = self._check(time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created)) + (f"-{label}" if label else ""))
        if await self.shelf.has(name):
            name = self._check(f"{name}-{secrets.token_hex(2)}" if len(name) < 60 else name)
        return await self.shelf.put(name, created)

    async def list(self) -> list[SnapshotInfo]:
        return await self.shelf.list()

    async def delete(self, name: str) -> None:
        await self.shelf.delete(self._check(name))

    async def restore(self, name: str, reason: str = "", message: str = "") -> dict[str, Any]:
        created_ms = await self.shelf.created(self._check(name)) * 1000
        record, stats, undone = await self.control.restore(
            created_ms, lambda: self.shelf.restore(name), reason or f"restore of snapshot {name}", message
        )
        return {"record": record_json(record), "restored_fields": stats.fields, "resets_undone": undone}


def _meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

