"""Cutting stored rows down to what a get asked for: key lex, order, ``%`` budget, hard cap.

Shared by every backend so that they answer the same query the same way; a backend may narrow
its scan first (an index range), this then applies the exact rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.lex import Budget
from .base import ReadQuery, Row, value_cost


def select_rows(souls: Iterable[tuple[str, list[Row]]], query: ReadQuery) -> dict[str, list[Row]]:
    """``souls`` yields (soul, rows in ascending key order); returns the rows to send."""
    key_lex = query.key
    budget = Budget(query.budget)
    counting = query.budget is not None
    remaining = query.max_fields
    out: dict[str, list[Row]] = {}
    for soul, rows in souls:
        if key_lex is not None:
            if key_lex.exact is not None:
                rows = [row for row in rows if row[0] == key_lex.exact]
            else:
                rows = [row for row in rows if key_lex.matches(row[0])]
                if key_lex.reverse:
                    rows.reverse()
        chosen: list[Row] = []
        for row in rows:
            if remaining <= 0 or budget.exhausted:
                break
            chosen.append(row)
            remaining -= 1
            if counting:
                budget.spend(value_cost(row[1]))
        if chosen:
            out[soul] = chosen
        if remaining <= 0 or budget.exhausted:
            break
    return out
