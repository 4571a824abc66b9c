"""An in-memory store: the reference implementation of the contract, for tests and ephemeral relays."""

from __future__ import annotations

import asyncio

from ..core.graph import Field, State
from .base import ReadQuery, Row, Store, StoreStats, encode_value, ham_wins, value_cost
from .query import select_rows


class MemoryStore(Store):
    def __init__(self) -> None:
        self._souls: dict[str, dict[str, tuple[str, State]]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _done(self, result: object) -> asyncio.Future:  # type: ignore[type-arg]
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future

    def merge(self, fields: list[Field]) -> asyncio.Future[list[Field]]:
        accepted = []
        for field in fields:
            node = self._souls.setdefault(field.soul, {})
            if ham_wins(field, node.get(field.key)):
                node[field.key] = (encode_value(field.value), field.state)
                accepted.append(field)
        return self._done(accepted)

    def read(self, query: ReadQuery) -> asyncio.Future[dict[str, list[Row]]]:
        if query.soul is not None:
            souls = [query.soul] if query.soul in self._souls else []
        else:
            assert query.soul_lex is not None
            souls = sorted((s for s in self._souls if query.soul_lex.matches(s)), reverse=query.soul_lex.reverse)

        def rows_of(soul: str) -> list[Row]:
            node = self._souls[soul]
            return [(key, node[key][0], node[key][1]) for key in sorted(node)]

        return self._done(select_rows(((soul, rows_of(soul)) for soul in souls), query))

    async def stats(self) -> StoreStats:
        fields = sum(len(node) for node in self._souls.values())
        size = sum(len(k) + len(v) for node in self._souls.values() for k, (v, _) in node.items())
        return StoreStats(souls=len(self._souls), fields=fields, bytes=size)


__all__ = ["MemoryStore", "value_cost"]
