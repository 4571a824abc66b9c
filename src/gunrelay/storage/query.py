"""Cutting stored rows down to what a get asked for: key lex, ``%`` budget, hard cap, pages.

Shared by every backend so that they answer the same query the same way. A backend narrows its
scan first (an index range from the lex's bounds, the resume point, the order) and hands the rows
over lazily; this applies the exact rules and ends the page when it is full.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.lex import Budget
from .graph import ReadPage, ReadQuery, Row, value_cost

ROW_OVERHEAD = 24  # what a field costs in a reply beyond its soul, key and value text


def select_rows(souls: Iterable[tuple[str, Iterable[Row]]], query: ReadQuery) -> ReadPage:
    """``souls`` yields (soul, rows in the scan's order) from the resume point on; the page to send."""
    key_lex = query.key
    budget = Budget(query.budget)
    counting = query.budget is not None
    remaining = query.max_fields
    page_bytes = query.page_bytes or 0
    scan_limit = query.scan_limit or 0
    size = scanned = fields = 0
    out: dict[str, list[Row]] = {}
    for soul, rows in souls:
        chosen: list[Row] = []
        for row in rows:
            scanned += 1
            if key_lex is None or key_lex.matches(row[0]):
                chosen.append(row)
                fields += 1
                remaining -= 1
                if counting:
                    budget.spend(value_cost(row[1]))
                size += len(soul) + len(row[0]) + len(row[1]) + ROW_OVERHEAD
                if remaining <= 0 or budget.exhausted:
                    out[soul] = chosen
                    return ReadPage(out, None, budget.used, fields)
            if (page_bytes and size >= page_bytes) or (scan_limit and scanned >= scan_limit):
                if chosen:
                    out[soul] = chosen
                return ReadPage(out, (soul, row[0]), budget.used, fields)
        if chosen:
            out[soul] = chosen
        scanned += 1  # a soul looked at counts even when none of its rows matched
        if scan_limit and scanned >= scan_limit:
            return ReadPage(out, (soul, None), budget.used, fields)
    return ReadPage(out, None, budget.used, fields)
