"""Opt-in pytest plugin: the interop suite's relays (``gunrelay serve`` processes) store in
PostgreSQL, one fresh database per relay data folder (a restarted relay finds its data again),
on one throwaway server (tests/postgres_server.py) for the session:

    PYTHONPATH=src:tests .venv/bin/python -m pytest -p postgres_everywhere -m interop tests/interop/test_gunjs_clients.py
"""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer

from gunrelay.storage.postgres import SCHEMA_VERSION


@pytest.fixture(scope="session", autouse=True)
def _relays_on_postgres() -> Iterator[None]:
    import interop_support  # tests/interop puts it on the path when its conftest loads

    server = PostgresServer()
    server.start()
    databases: dict[Path, str] = {}
    original = interop_support.Relay.command

    def command(relay: interop_support.Relay) -> list[str]:
        if relay.target != "ours":
            return original(relay)
        if relay.data_dir not in databases:
            databases[relay.data_dir] = server.new_database()
        relay.store_url = databases[relay.data_dir]  # type: ignore[attr-defined]  # for a test that reads the store itself
        return [*original(relay), "--storage", "postgres", "--postgres-url", databases[relay.data_dir]]

    interop_support.Relay.command = command  # type: ignore[method-assign]
    try:
        yield
        for url in databases.values():  # every relay really stored there
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)], url
        print(f"\n{len(databases)} relay(s) stored in PostgreSQL")
    finally:
        interop_support.Relay.command = original  # type: ignore[method-assign]
        server.stop()
