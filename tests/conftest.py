"""Suite-wide: relays started by tests note their token files in a private folder, not the user's;
the live relay fixture (``live_relay``) for tests of the server, the console and the command line;
one throwaway PostgreSQL server for the session (``postgres_server``, started on first use; each
test takes a fresh database of it, ``postgres_url``). Tests that stop, freeze or fill their server
start one of their own."""

import asyncio
import os
import socket
import tempfile
from pathlib import Path

import pytest
import uvicorn
from fakes import TOKEN
from postgres_server import PostgresServer

from gunrelay.app import build_app, uvicorn_config
from gunrelay.config import load_config

os.environ.setdefault("GUNRELAY_STATE_DIR", tempfile.mkdtemp(prefix="gunrelay-state-"))


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's throwaway server."""
    return postgres_server.new_database()


# -- an in-process relay on a free loopback port, served by uvicorn exactly as ``gunrelay serve`` does

ROOT = Path(__file__).resolve().parents[1]


class LiveRelay:
    def __init__(self, app, port: int, server: uvicorn.Server, task: asyncio.Task):
        self.app = app
        self.task = task
        self.port = port
        self.server = server
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/gun"


@pytest.fixture
def relay_settings() -> dict:
    """Settings a test module wants on top of the live relay's defaults (override this fixture)."""
    return {}


@pytest.fixture
async def live_relay(tmp_path, relay_settings):
    config = load_config(
        {
            "data": str(tmp_path / "data"),
            "max_frame_bytes": 64 * 1024,
            "gun_dir": str(ROOT / "node_modules" / "gun"),
            "admin_token": TOKEN,
            **relay_settings,
        },
        env={},
    )
    app = build_app(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started, "relay did not start"
    yield LiveRelay(app, sock.getsockname()[1], server, task)
    server.should_exit = True
    await asyncio.wait_for(task, 15)
