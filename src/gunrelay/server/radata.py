"""Reading a stopped Node GUN relay's RAD folder (``gunrelay import radata``): the folder's files,
each parsed whole by ``core.radata`` and checked as a put's field (``interchange.field_of``).

A file that cannot be read (I/O error, not UTF-8, not a RAD file, truncated) is reported by name
with the reason and skipped whole, and the rest goes on; an entry of a readable file that is not a
field is a ``Malformed`` entry (``FILE: key``), counted and skipped by the import. RAD's own list
of files (``%1C``) and temporary files (``*.tmp``, should a crash have left one) are not data.
Files are read one at a time, so memory holds one file's records (about 1 MB of text) at once.
``RadFolder`` is what the command line uses: the entries for an offline import
(``Interchange.import_entries``), or gunrelay-jsonl lines for a running relay's ``POST /-/api/import``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core import radata
from ..core.errors import OperatorError
from .interchange import Entry, ImportReport, Malformed, field_of, fields_header, line_of

MAX_SHOWN_KEY = 80  # characters of a bad entry's key shown in the report


def data_files(folder: Path) -> list[Path]:
    """The folder's data files, in name order; an ``OperatorError`` if it is not a folder."""
    if not folder.is_dir():
        raise OperatorError(f"{folder} is not a folder (give the Node relay's RAD folder, e.g. radata)")
    return sorted(
        path for path in folder.iterdir()
        if path.is_file() and not radata.is_directory(path.name) and not path.name.endswith(".tmp")
    )


def file_entries(path: Path) -> list[Entry]:
    """One file's entries; ``radata.DamagedFile`` (or ``OSError``) when the file cannot be read whole."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise radata.DamagedFile(f"not UTF-8 text (byte {exc.start})") from None
    if not text:
        raise radata.DamagedFile("empty")
    entries: list[Entry] = []
    for item in radata.parse_file(text):
        if isinstance(item, radata.BadEntry):
            entries.append(Malformed(f"{path.name}: {item.key[:MAX_SHOWN_KEY]!r}", item.reason))
            continue
        checked = field_of(item.soul, item.key, item.value, item.state)
        where = f"{path.name}: {(item.soul + radata.ESC + item.key)[:MAX_SHOWN_KEY]!r}"
        entries.append(Malformed(where, checked) if isinstance(checked, str) else checked)
    return entries


def read_folder(
    files: list[Path], skip: Callable[[str, str], None], done: Callable[[Path], None] | None = None,
) -> Iterator[Entry]:
    """Every entry of ``files``, one file at a time; a file that cannot be read is passed to
    ``skip(name, reason)`` and left out whole. ``done`` is told each file read."""
    for path in files:
        try:
            entries = file_entries(path)
        except radata.DamagedFile as exc:
            skip(path.name, str(exc))
        except OSError as exc:
            skip(path.name, f"cannot read: {exc.strerror or exc}")
        else:
            yield from entries
        if done is not None:
            done(path)


class RadFolder:
    """One RAD folder to import, and the report of that import (files read, skipped, malformed)."""

    def __init__(self, path: Path, *, dry_run: bool):
        self.path = path
        self.files = data_files(path)
        self.report = ImportReport(source="radata", dry_run=dry_run, files=len(self.files))

    def entries(self, skipped: Callable[[Path, str], None], done: Callable[[Path], None] | None = None) -> Iterator[Entry]:
        def skip(name: str, reason: str) -> None:
            self.report.skip_file(name, reason)
            skipped(self.path / name, reason)

        return read_folder(self.files, skip, done)

    def lines(self, entries: Iterator[Entry]) -> Iterator[str]:
        """gunrelay-jsonl for a running relay: a header without resets, then each field's line;
        malformed entries are counted here (they are not sent)."""
        yield fields_header()
        for entry in entries:
            if isinstance(entry, Malformed):
                self.report.bad_line(entry.where)
            else:
                yield line_of(entry)

    def add_live_result(self, live: dict[str, Any]) -> None:
        """Take the running relay's counts of what was sent into this report."""
        report = self.report
        report.relay = live["relay"]
        report.imported, report.kept, report.fenced = live["imported"], live["kept"], live["fenced"]
        report.refused = dict(live["refused_by_reason"])
        report.malformed += live["malformed"]  # none expected: only checked fields are sent
