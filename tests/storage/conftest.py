"""The backends the contract suites run against: every graph store, and the relay's full stores.

A full store is a graph store too, so the graph contract runs over all four; the control
contract over the two that keep a control log.
"""

import pytest

from gunrelay.storage.memory import MemoryGraph, MemoryStore
from gunrelay.storage.sqlite import SQLiteGraph, SQLiteStore

BACKENDS = {
    "memory-graph": lambda tmp_path: MemoryGraph(),
    "sqlite-graph": lambda tmp_path: SQLiteGraph(tmp_path / "graph.sqlite3"),
    "memory-store": lambda tmp_path: MemoryStore(),
    "sqlite-store": lambda tmp_path: SQLiteStore(tmp_path / "db.sqlite3"),
}
FULL_STORES = ["memory-store", "sqlite-store"]


@pytest.fixture(params=list(BACKENDS))
async def graph(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture(params=FULL_STORES)
async def store(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path)
    await backend.open()
    yield backend
    await backend.close()
