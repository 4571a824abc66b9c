"""The operator's audit log: every action taken through the API, who took it, from where, how it ended.

Entries are stored durably in the store's audit table (append-only, never capped) and read back a
page at a time, newest first. Addresses are stored as they are and shown through privacy mode.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..core.privacy import Privacy
from ..storage.base import AuditEntry, Store

log = logging.getLogger("gunrelay.audit")

MAX_DETAIL = 2000  # characters of a request's detail kept; longer ones are cut with a marker
MAX_DEPTH = 20  # levels of a request's detail kept; deeper lists and objects are shown as "..."


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    return "error" if status >= 500 else "refused"


def _bounded(value: Any, depth: int = 0) -> Any:
    """``value`` with lists and objects nested deeper than ``MAX_DEPTH`` replaced by a marker (orjson
    will not write past 254 levels, while a request body may nest up to 1024)."""
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {key: _bounded(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_bounded(item, depth + 1) for item in value]
    return value


def detail_text(detail: dict[str, Any]) -> str:
    text = orjson.dumps(_bounded(detail), default=str).decode()
    if len(text) > MAX_DETAIL:
        return text[:MAX_DETAIL] + f"... (cut: {len(text)} characters in all)"
    return text


class Audit:
    def __init__(self, store: Store, privacy: Privacy, clock: Callable[[], float] = time.time):
        self.store = store
        self.privacy = privacy
        self.clock = clock

    async def record(self, who: str, address: str, action: str, detail: dict[str, Any], status: int) -> None:
        try:
            entry = AuditEntry(self.clock() * 1000, who, address, action, detail_text(detail), outcome_of(status), status)
            await self.store.append_audit(entry)
        except Exception:  # the action itself already happened; say loudly that its entry is missing
            log.exception("could not write the audit entry for %s by %s (%s)", action, who, outcome_of(status))

    async def page(self, page: int, per_page: int) -> dict[str, Any]:
        entries, total = await self.store.audit_page((page - 1) * per_page, per_page)
        show = self.privacy.show
        return {
            "entries": [
                {
                    "id": e.id,
                    "at": e.at,
                    "who": e.who,
                    "address": show(e.address),
                    "action": e.action,
                    "detail": self.privacy.text(e.detail),
                    "outcome": e.outcome,
                    "status": e.status,
                }
                for e in entries
            ],
            "total": total,
            "page": page,
            "per_page": per_page,
            "pages": max(1, math.ceil(total / per_page)),
        }
