"""The backends the contract suites run against: every graph store, and the relay's full stores.

A full store is a graph store too, so the graph contract runs over all of them; the control
contract over the ones that keep a control log. The PostgreSQL store runs against the session's throwaway
server (``postgres_server``, tests/conftest.py), a fresh database for each test.
"""

import pytest

from gunrelay.storage.memory import MemoryGraph, MemoryStore
from gunrelay.storage.postgres import PostgresStore
from gunrelay.storage.sqlite import SQLiteGraph, SQLiteStore

BACKENDS = {
    "memory-graph": lambda tmp_path, request: MemoryGraph(),
    "sqlite-graph": lambda tmp_path, request: SQLiteGraph(tmp_path / "graph.sqlite3"),
    "memory-store": lambda tmp_path, request: MemoryStore(),
    "sqlite-store": lambda tmp_path, request: SQLiteStore(tmp_path / "db.sqlite3"),
    "postgres-store": lambda tmp_path, request: PostgresStore(request.getfixturevalue("postgres_server").new_database()),
}
FULL_STORES = ["memory-store", "sqlite-store", "postgres-store"]


@pytest.fixture(params=list(BACKENDS))
async def graph(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path, request)
    await backend.open()
    yield backend
    await backend.close()


@pytest.fixture(params=FULL_STORES)
async def store(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path, request)
    await backend.open()
    yield backend
    await backend.close()
