"""Export and import of a whole store as JSON lines (``gunrelay export``, ``gunrelay import jsonl``),
and the one import path every source of fields shares (``gunrelay import radata``, ``POST /-/api/import``).

Theory of operation (the format itself is documented in docs/interchange.md):

- **Export** writes a header line (format, version, the relay's pub, every reset record with its
  fence souls and purge/publication/superseded state, the TTL rules), then one line per stored
  field ``{"soul", "key", "value", "state"}``. Fields are read with ``store.read_page`` over every
  soul (an empty soul lex), a bounded page at a time, resuming where the last page ended: the
  graph is never held whole. A value is written as the store keeps it (its JSON text), so a value
  with a lone surrogate stays escaped (``\\udXXX``) and comes back identical.
- **Import** reads the header first and installs its resets through the reset control
  (``ResetControl.install_imported``: live fence first, then the durable install) and its TTL
  rules through ``Expiry``, so the fences hold from the first field line on. Each field then
  goes through the wire's checks: the shape of a GUN field (``core.graph``), the fence (a reset's
  refuses whatever it covers; a rotation in its grace period and a restore are read-only rules
  that still serve what they found, so a field stated at or before their issue is imported, a
  later one refused like a write), then ``core.admission.admit``
  for timing (far-future states refused) and SEA (signatures, certificates; write-block lists
  looked up in the store). The operator vouches for the file, so the legacy system node is not
  refused as "system space"; the relay's own SEA space still needs valid signatures. What passes
  is merged in batches by ``store.merge`` (HAM against what is stored): changed fields count as
  ``imported``, the rest as ``kept`` (the store's value won). A malformed line is counted, its
  number noted, and skipped. A dry run counts without writing (``imported`` then counts what
  passed the checks; HAM against the store is not judged).
- **One path.** The fence, admission, batching, merge and counting live in ``FieldImport``, and
  only there: jsonl lines (``import_lines``) and a Node relay's RAD records (``import_entries``,
  read by ``server/radata.py``) feed it ``Field`` or ``Malformed`` entries. On a running relay
  (``POST /-/api/import``) the merge is ``Relay.publish`` (pushed to subscribers like any accepted
  write) in small batches, each awaiting the store's writer thread, so the relay's clients are
  served between them; such an import takes fields only (no resets or TTL rules in its header).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..core import admission
from ..core.errors import OperatorError
from ..core.fence import FenceView
from ..core.graph import Field, InvalidGraph, State, fields_of_put
from ..core.lex import Lex
from ..core.reset import ResetRecord
from ..core.wire import encode, loads, node
from ..storage.base import ReadQuery, Store, StoredReset, encode_value
from .control import ResetControl, record_json
from .expiry import Expiry

FORMAT = "gunrelay-jsonl"
VERSION = 1
PAGE_BYTES = 1 << 20  # fields' text read per page, about
PAGE_SCAN = 50_000  # stored rows one page may look at
BATCH = 2_000  # field lines merged at once on import
MAX_NOTED = 100  # malformed line numbers kept in the report


class InterchangeError(OperatorError):
    """The file cannot be imported at all (no header, another format, a newer version)."""


def reset_json(held: StoredReset) -> dict[str, Any]:
    """A stored reset as the header carries it: the record's published values (keep as a list),
    its fence souls, and its purge, publication and superseded state."""
    values = record_json(held.record)
    values.update(
        souls=sorted(held.souls), purge_done=held.purge_done, purged=held.purged,
        published=held.published, superseded_by=held.superseded_by,
    )
    return values


def reset_from_json(data: Any) -> StoredReset:
    if not isinstance(data, dict):
        raise InterchangeError("a reset in the header is not an object")
    try:
        watermark = data["W"]
        record = ResetRecord(
            reset_id=str(data["reset_id"]), scope=str(data["scope"]), epoch=int(data["epoch"]),
            watermark=math.inf if watermark == "Infinity" else float(watermark), issued_at=float(data["issued_at"]),
            reason=str(data.get("reason") or ""), message=str(data.get("message") or ""),
            keep=tuple(str(k) for k in data.get("keep") or ()), replacement=data.get("replacement"),
            kind=str(data.get("kind") or "reset"), purge_after=data.get("purge_after"),
        )
        return StoredReset(
            record, frozenset(str(s) for s in data.get("souls") or ()), purge_done=bool(data.get("purge_done")),
            purged=int(data.get("purged") or 0), superseded_by=data.get("superseded_by"), published=bool(data.get("published")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InterchangeError(f"a reset in the header is malformed: {exc!r}") from None


def _json(text: str) -> str:
    return encode_value(text)  # orjson, or JSON.stringify's escapes for a lone surrogate


def field_line(soul: str, key: str, value_json: str, state: State) -> str:
    return f'{{"soul":{_json(soul)},"key":{_json(key)},"value":{value_json},"state":{orjson.dumps(state).decode()}}}\n'


def fields_header(relay_pub: str | None = None) -> str:
    """A header carrying no resets or TTL rules: what a file of fields only begins with (a RAD
    folder sent to a running relay, ``gunrelay import radata --url``)."""
    return encode({"format": FORMAT, "version": VERSION, "exported_at": time.time() * 1000, "relay": relay_pub, "resets": [], "ttl": {}}) + "\n"


def line_of(item: Field) -> str:
    return field_line(item.soul, item.key, encode_value(item.value), item.state)


async def export_lines(store: Store, relay_pub: str) -> AsyncIterator[str]:
    """The header line, then every stored field's line, one page of lines (about ``PAGE_BYTES``) at a time."""
    resets = sorted(await store.load_resets(), key=lambda h: h.record.issued_at)
    header = {
        "format": FORMAT, "version": VERSION, "exported_at": time.time() * 1000, "relay": relay_pub,
        "resets": [reset_json(h) for h in resets], "ttl": await store.load_ttls(),
    }
    yield encode(header) + "\n"
    after: tuple[str, str | None] | None = None
    while True:
        query = ReadQuery(None, soul_lex=Lex(), max_fields=1 << 62, after=after, page_bytes=PAGE_BYTES, scan_limit=PAGE_SCAN)
        page = await store.read_page(query)
        yield "".join(field_line(soul, key, value_json, state) for soul, rows in page.souls.items() for key, value_json, state in rows)
        if page.resume is None:
            return
        after = page.resume


async def export(
    store: Store, relay_pub: str, write: Callable[[str], Any], progress: Callable[[int], None] | None = None,
) -> int:
    """Write the header and every stored field, page by page; the number of fields written."""
    written = -1  # the header is not a field
    async for chunk in export_lines(store, relay_pub):
        write(chunk)
        written += chunk.count("\n")
        if progress is not None:
            progress(written)
    return written


@dataclass(frozen=True, slots=True)
class Malformed:
    """An entry that is not a field: where it was (a line number, or a RAD file and key) and why."""

    where: int | str
    reason: str


Entry = Field | Malformed
Merge = Callable[[list[Field]], Awaitable[list[Field]]]  # store.merge, or Relay.publish on a live relay


@dataclass
class ImportReport:
    source: str = "jsonl"  # or "radata"
    lines: int = 0  # jsonl: lines read
    files: int = 0  # radata: data files read
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # radata: (name, why), damaged or unreadable
    imported: int = 0  # changed the store (a dry run: passed every check)
    kept: int = 0  # HAM kept the stored value
    fenced: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # admission's kind (fenced apart) -> count
    malformed: int = 0
    malformed_at: list[int | str] = field(default_factory=list)  # the first MAX_NOTED
    resets_installed: int = 0
    resets_known: int = 0  # already on this relay: left as they are
    ttl_rules: int = 0
    source_relay: str | None = None
    relay: str | None = None  # this relay's pub
    dry_run: bool = False

    def refuse(self, kind: str) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1

    def bad_line(self, where: int | str) -> None:
        self.malformed += 1
        if len(self.malformed_at) < MAX_NOTED:
            self.malformed_at.append(where)

    def skip_file(self, name: str, reason: str) -> None:
        self.skipped_files.append((name, reason))

    def as_json(self) -> dict[str, Any]:
        counts = {
            "imported": self.imported, "kept": self.kept, "fenced": self.fenced,
            "refused": sum(self.refused.values()), "refused_by_reason": dict(sorted(self.refused.items())),
            "malformed": self.malformed,
        }
        if self.source == "radata":
            return {
                "dry_run": self.dry_run, "relay": self.relay, "files": self.files,
                "files_skipped": len(self.skipped_files),
                "skipped_files": [{"file": name, "reason": why} for name, why in self.skipped_files],
                **counts, "malformed_entries": self.malformed_at,
            }
        return {
            "dry_run": self.dry_run, "source_relay": self.source_relay, "relay": self.relay, "lines": self.lines,
            "resets_installed": self.resets_installed,
            "resets_already_known": self.resets_known, "ttl_rules": self.ttl_rules,
            **counts, "malformed_lines": self.malformed_at,
        }


def field_of(soul: Any, key: Any, value: Any, state: Any) -> Field | str:
    """The Field these parts make, checked as the wire checks a put, or why they make none."""
    if type(soul) is not str or type(key) is not str or key == "_":
        return "soul and key must be strings (the key not '_')"
    try:  # the wire's own validation of a put, on a graph of this one field
        fields = fields_of_put({soul: node(soul, [(key, value, state)])})
    except InvalidGraph as exc:
        return str(exc)
    return fields[0]


def parse_field(data: Any) -> Field | str:
    """A field line's Field, or why it is not one."""
    if not isinstance(data, dict) or set(data) != {"soul", "key", "value", "state"}:
        return "not an object of exactly soul, key, value, state"
    return field_of(data["soul"], data["key"], data["value"], data["state"])


def entry_of_line(number: int, text: str) -> Entry:
    try:
        parsed = parse_field(loads(text))
    except Exception:  # not JSON at all
        parsed = "not JSON"
    return Malformed(number, parsed) if isinstance(parsed, str) else parsed


class FieldImport:
    """The one path every imported field takes (jsonl lines, RAD records, a live relay's API):
    the fence (read-only rules still serving what they found), ``core.admission.admit`` (timing,
    SEA, write-block lookups), then ``merge`` in batches by HAM, each outcome counted."""

    def __init__(
        self, store: Store, report: ImportReport, fence: FenceView, served_until: Callable[[str], float], *,
        max_skew_ms: float, clock_ms: Callable[[], float], merge: Merge | None, batch: int,
    ):
        self.store = store
        self.report = report
        self.fence = fence
        self.served_until = served_until
        self.max_skew_ms = max_skew_ms
        self.clock_ms = clock_ms
        self.merge = merge or store.merge
        self.batch_size = batch
        self.batch: list[Field] = []

    async def add(self, entry: Entry) -> None:
        if isinstance(entry, Malformed):
            self.report.bad_line(entry.where)
            return
        self.batch.append(entry)
        if len(self.batch) >= self.batch_size:
            await self.flush()

    async def flush(self) -> None:
        batch, self.batch = self.batch, []
        if batch:
            await self._merge(batch)

    def _through_fence(self, batch: list[Field], now: float) -> list[Field]:
        """The fields the fence lets in (read-only rules still serving what they found); the rest counted."""
        fence = self.fence
        if not fence:
            return batch
        judged: list[Field] = []
        for item in batch:
            rule = fence.blocks(item.soul, item.state, now)
            if rule is None or (rule.serves and item.state <= self.served_until(rule.rule_id)):
                judged.append(item)
            else:
                self.report.fenced += 1
        return judged

    async def _merge(self, batch: list[Field]) -> None:
        report = self.report
        now = self.clock_ms()
        fence = self.fence
        version = fence.version
        judged = self._through_fence(batch, now)
        # the fence was asked above (read-only rules serving what they found); the rest of the wire's admission here
        verdict = admission.admit(judged, now, FenceView(fence.protected), self.max_skew_ms, refuse_protected=False)
        for kind, _ in verdict.refused:
            report.refuse(kind)
        passed = verdict.passed
        if verdict.lookups:
            wanted = admission.wanted_lookups(verdict.lookups)
            found = [await self.store.read(ReadQuery(soul=soul, key=Lex(exact=writer))) for soul, writer in wanted]
            again = admission.recheck(verdict.lookups, admission.blocked(wanted, found), now)
            for kind, _ in again.refused:
                report.refuse(kind)
            passed = passed + again.passed
        if fence.version != version:  # a reset went up while write-block entries were read (a live relay)
            passed = self._through_fence(passed, self.clock_ms())
        if report.dry_run:
            report.imported += len(passed)
            return
        changed = await self.merge(passed)
        report.imported += len(changed)
        report.kept += len(passed) - len(changed)


async def _async_items(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class Interchange:
    """Export and import over the relay's own store, reset control and TTL rules."""

    def __init__(self, store: Store, control: ResetControl, expiry: Expiry, relay_pub: str, *, max_skew_ms: float, clock_ms: Callable[[], float]):
        self.store = store
        self.control = control
        self.expiry = expiry
        self.relay_pub = relay_pub
        self.max_skew_ms = max_skew_ms
        self.clock_ms = clock_ms

    async def export(self, write: Callable[[str], Any], progress: Callable[[int], None] | None = None) -> int:
        return await export(self.store, self.relay_pub, write, progress)

    def export_lines(self) -> AsyncIterator[str]:
        return export_lines(self.store, self.relay_pub)

    def _field_import(
        self, report: ImportReport, fence: FenceView, header_resets: dict[str, StoredReset], merge: Merge | None, batch: int,
    ) -> FieldImport:
        def served_until(rule_id: str) -> float:
            """A read-only rule (a rotation in its grace period, a restore) still serves the data it
            found: states up to its issue (a rotation's W is +inf) came from the exporting store; a
            later one is a write it refuses."""
            held = self.control.resets.get(rule_id) or header_resets.get(rule_id)
            if held is None:
                return -math.inf
            record = held.record
            return record.issued_at if math.isinf(record.watermark) else record.watermark

        return FieldImport(
            self.store, report, fence, served_until, max_skew_ms=self.max_skew_ms, clock_ms=self.clock_ms, merge=merge, batch=batch,
        )

    async def import_entries(
        self, entries: Iterable[Entry] | AsyncIterable[Entry], report: ImportReport, *,
        merge: Merge | None = None, batch: int = BATCH,
    ) -> ImportReport:
        """Import fields read by another reader (a RAD folder: ``server/radata.py``) against the
        fences this relay holds; ``report`` already says the source and whether it is a dry run."""
        report.relay = self.relay_pub
        run = self._field_import(report, self.control.fence, {}, merge, batch)
        async for entry in _async_items(entries):
            await run.add(entry)
        await run.flush()
        return report

    async def import_lines(
        self, lines: Iterable[str] | AsyncIterable[str], *, dry_run: bool = False, progress: Callable[[int], None] | None = None,
        merge: Merge | None = None, batch: int = BATCH, live: bool = False,
    ) -> ImportReport:
        """Import from ``lines`` (the header first); see the module's theory of operation. ``live``:
        into a serving relay (``POST /-/api/import``), which takes fields only: a header carrying
        resets or TTL rules is refused (import those offline)."""
        report = ImportReport(dry_run=dry_run, relay=self.relay_pub)
        numbered = _async_items(lines)
        number = 0
        run: FieldImport | None = None
        async for text in numbered:
            number += 1
            report.lines = number
            if run is None:
                if text.strip():
                    fence, header_resets = await self._header(text, report, dry_run, live)
                    run = self._field_import(report, fence, header_resets, merge, batch)
                continue
            if not text.strip():
                continue
            await run.add(entry_of_line(number, text))
            if progress is not None and not run.batch:
                progress(number)
        if run is None:
            raise InterchangeError("the file is empty: no header line")
        await run.flush()
        if progress is not None:
            progress(report.lines)
        return report

    async def _header(self, text: str, report: ImportReport, dry_run: bool, live: bool) -> tuple[FenceView, dict[str, StoredReset]]:
        """Read the header, install its resets and TTL rules (unless a dry run); the fence the
        fields are judged against, and the header's resets by id."""
        try:
            header = loads(text)
        except Exception:
            raise InterchangeError("line 1 is not JSON: not a gunrelay-jsonl file") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InterchangeError(f"line 1 is not a {FORMAT} header")
        if header.get("version") != VERSION:
            raise InterchangeError(f"{FORMAT} version {header.get('version')!r} is not supported (this relay reads version {VERSION})")
        report.source_relay = header.get("relay") if isinstance(header.get("relay"), str) else None
        resets = [reset_from_json(r) for r in header.get("resets") or ()]
        ttls = header.get("ttl") or {}
        if not isinstance(ttls, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in ttls.values()):
            raise InterchangeError("the header's ttl must map prefixes to milliseconds")
        if live and (resets or ttls):
            raise InterchangeError("a running relay imports fields only: this header carries resets or TTL rules (import the file offline, --data)")
        for held in sorted(resets, key=lambda h: h.record.issued_at):
            if held.record.reset_id in self.control.resets:
                report.resets_known += 1
            elif not dry_run:
                await self.control.install_imported(held, [h for h in resets if h.superseded_by == held.record.reset_id])
                report.resets_installed += 1
            else:
                report.resets_installed += 1
        for prefix, ttl_ms in ttls.items():
            self.expiry.check(prefix)
            if not dry_run:  # in force here, not published to the mesh: the store stays the export's, field by field
                await self.expiry.apply(prefix, ttl_ms)
            report.ttl_rules += 1
        header_resets = {h.record.reset_id: h for h in resets}
        if dry_run:  # judge the fields against the fence the import would put up
            return self.control.fence_with([h for h in resets if h.record.reset_id not in self.control.resets], ttls), header_resets
        return self.control.fence, header_resets
