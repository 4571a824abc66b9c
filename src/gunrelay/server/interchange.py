"""Export and import of a whole store as JSON lines (``gunrelay export``, ``gunrelay import jsonl``).

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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
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


async def export(
    store: Store, relay_pub: str, write: Callable[[str], Any], progress: Callable[[int], None] | None = None,
) -> int:
    """Write the header and every stored field, page by page; the number of fields written."""
    resets = sorted(await store.load_resets(), key=lambda h: h.record.issued_at)
    header = {
        "format": FORMAT, "version": VERSION, "exported_at": time.time() * 1000, "relay": relay_pub,
        "resets": [reset_json(h) for h in resets], "ttl": await store.load_ttls(),
    }
    write(encode(header) + "\n")
    written = 0
    after: tuple[str, str | None] | None = None
    while True:
        query = ReadQuery(None, soul_lex=Lex(), max_fields=1 << 62, after=after, page_bytes=PAGE_BYTES, scan_limit=PAGE_SCAN)
        page = await store.read_page(query)
        for soul, rows in page.souls.items():
            write("".join(field_line(soul, key, value_json, state) for key, value_json, state in rows))
            written += len(rows)
        if progress is not None:
            progress(written)
        if page.resume is None:
            return written
        after = page.resume


@dataclass
class ImportReport:
    lines: int = 0
    imported: int = 0  # changed the store (a dry run: passed every check)
    kept: int = 0  # HAM kept the stored value
    fenced: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # admission's kind (fenced apart) -> count
    malformed: int = 0
    malformed_lines: list[int] = field(default_factory=list)  # the first MAX_NOTED
    resets_installed: int = 0
    resets_known: int = 0  # already on this relay: left as they are
    ttl_rules: int = 0
    source_relay: str | None = None
    relay: str | None = None  # this relay's pub
    dry_run: bool = False

    def refuse(self, kind: str) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1

    def bad_line(self, number: int) -> None:
        self.malformed += 1
        if len(self.malformed_lines) < MAX_NOTED:
            self.malformed_lines.append(number)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "source_relay": self.source_relay, "relay": self.relay, "lines": self.lines,
            "resets_installed": self.resets_installed, "resets_already_known": self.resets_known, "ttl_rules": self.ttl_rules,
            "imported": self.imported, "kept": self.kept, "fenced": self.fenced,
            "refused": sum(self.refused.values()), "refused_by_reason": dict(sorted(self.refused.items())),
            "malformed": self.malformed, "malformed_lines": self.malformed_lines,
        }


def parse_field(data: Any) -> Field | str:
    """A field line's Field, or why it is not one."""
    if not isinstance(data, dict) or set(data) != {"soul", "key", "value", "state"}:
        return "not an object of exactly soul, key, value, state"
    soul, key = data["soul"], data["key"]
    if type(soul) is not str or type(key) is not str or key == "_":
        return "soul and key must be strings (the key not '_')"
    try:  # the wire's own validation of a put, on a graph of this one field
        fields = fields_of_put({soul: node(soul, [(key, data["value"], data["state"])])})
    except InvalidGraph as exc:
        return str(exc)
    return fields[0]


class Interchange:
    """Export and import over the relay's own store, reset control and TTL rules."""

    def __init__(self, store: Store, control: ResetControl, expiry: Expiry, relay_pub: str, *, max_skew_ms: float, clock_ms: Callable[[], float]):
        self.store = store
        self.control = control
        self.expiry = expiry
        self.relay_pub = relay_pub
        self.max_skew_ms = max_skew_ms
        self.clock_ms = clock_ms
        self._dry_fence: FenceView = control.fence
        self._header_resets: dict[str, StoredReset] = {}

    async def export(self, write: Callable[[str], Any], progress: Callable[[int], None] | None = None) -> int:
        return await export(self.store, self.relay_pub, write, progress)

    async def import_lines(
        self, lines: Iterable[str], *, dry_run: bool = False, progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import from ``lines`` (the header first); see the module's theory of operation."""
        report = ImportReport(dry_run=dry_run, relay=self.relay_pub)
        numbered = enumerate(lines, start=1)
        for number, text in numbered:
            report.lines = number
            if text.strip():
                await self._header(text, report, dry_run)
                break
        else:
            raise InterchangeError("the file is empty: no header line")
        batch: list[Field] = []
        for number, text in numbered:
            report.lines = number
            if not text.strip():
                continue
            try:
                parsed = parse_field(loads(text))
            except Exception:  # not JSON at all
                parsed = "not JSON"
            if isinstance(parsed, str):
                report.bad_line(number)
                continue
            batch.append(parsed)
            if len(batch) >= BATCH:
                await self._merge(batch, report, dry_run)
                batch = []
                if progress is not None:
                    progress(number)
        if batch:
            await self._merge(batch, report, dry_run)
        if progress is not None:
            progress(report.lines)
        return report

    async def _header(self, text: str, report: ImportReport, dry_run: bool) -> None:
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
        self._header_resets = {h.record.reset_id: h for h in resets}
        ttls = header.get("ttl") or {}
        if not isinstance(ttls, dict) or not all(isinstance(v, (int, float)) and v > 0 for v in ttls.values()):
            raise InterchangeError("the header's ttl must map prefixes to milliseconds")
        for held in sorted(resets, key=lambda h: h.record.issued_at):
            if held.record.reset_id in self.control.resets:
                report.resets_known += 1
            elif not dry_run:
                await self.control.install_imported(held, [h for h in resets if h.superseded_by == held.record.reset_id])
                report.resets_installed += 1
            else:
                report.resets_installed += 1
        for prefix, ttl_ms in ttls.items():
            if not dry_run:
                await self.expiry.set(prefix, ttl_ms / 1000)
            report.ttl_rules += 1
        if dry_run:  # judge the fields against the fence the import would put up
            self._dry_fence = self.control.fence_with([h for h in resets if h.record.reset_id not in self.control.resets], ttls)

    def _served_until(self, rule_id: str) -> float:
        """A read-only rule (a rotation in its grace period, a restore) still serves the data it
        found: states up to its issue (a rotation's W is +inf) came from the exporting store; a
        later one is a write it refuses."""
        held = self.control.resets.get(rule_id) or self._header_resets.get(rule_id)
        if held is None:
            return -math.inf
        record = held.record
        return record.issued_at if math.isinf(record.watermark) else record.watermark

    def _fence(self, dry_run: bool) -> FenceView:
        return self._dry_fence if dry_run else self.control.fence

    async def _merge(self, batch: list[Field], report: ImportReport, dry_run: bool) -> None:
        now = self.clock_ms()
        fence = self._fence(dry_run)
        judged: list[Field] = []
        for item in batch:
            rule = fence.blocks(item.soul, item.state, now) if fence else None
            if rule is None or (rule.serves and item.state <= self._served_until(rule.rule_id)):
                judged.append(item)
            else:
                report.fenced += 1
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
        if dry_run:
            report.imported += len(passed)
            return
        changed = await self.store.merge(passed)
        report.imported += len(changed)
        report.kept += len(passed) - len(changed)
