"""Fixtures for the GunJS interop suite.

Run against our relay (default) or the reference Node relay:
    .venv/bin/pytest tests/interop -m interop
    GUNRELAY_INTEROP_TARGET=node .venv/bin/pytest tests/interop -m interop
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interop_support import (  # noqa: E402
    CHROMIUM_ARGS,
    GUN_DIR,
    TARGET,
    GunProcess,
    GunResult,
    Relay,
    rid,
    run_gun,
)


def pytest_report_header(config: pytest.Config) -> str:
    return f"gunrelay interop target: {TARGET} (set GUNRELAY_INTEROP_TARGET=ours|node)"


@pytest.fixture(scope="session", autouse=True)
def _interop_prerequisites() -> None:
    # `make test` installs these; a missing one is a broken set-up, not a reason to skip interop
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH")
    if not (GUN_DIR / "gun.js").exists():
        pytest.fail("node_modules/gun is not installed (npm ci in the repo root)")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """One relay shared by a test module; tests keep apart by using unique souls."""
    base = tmp_path_factory.mktemp(f"relay-{TARGET}")
    r = Relay(base / "data", base / "logs")
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, postgres_server) -> Iterator[tuple[Relay, Relay]]:
    """One relay, two processes: two `gunrelay serve` on one PostgreSQL database (of the session's
    throwaway server) and one data folder (so one identity and one operator token), on two ports;
    shared by a test module."""
    base = tmp_path_factory.mktemp("fleet")
    args = ["--storage", "postgres", "--postgres-url", postgres_server.new_database()]
    # one data folder: the first process creates the identity and token, the second finds them
    first = Relay(base / "data", base / "logs", args=args).start()
    try:
        second = Relay(base / "data", base / "logs", args=args).start()
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
def fresh_relay(tmp_path: Path) -> Iterator[Relay]:
    """A relay of its own (for restarts), on a fresh data dir."""
    r = Relay(tmp_path / "data", tmp_path / "logs")
    r.start()
    try:
        yield r
    finally:
        r.stop()


class Clients:
    """Starts fresh GunJS client processes; kills any still running at teardown."""

    def __init__(self, tmpdir: Path):
        self.tmpdir = tmpdir
        self.procs: list[GunProcess] = []

    def run(self, relay: Relay, steps: list[dict[str, Any]], **kw: Any) -> GunResult:
        kw.setdefault("tmpdir", self.tmpdir)
        return run_gun(relay, steps, **kw)

    def spawn(self, relay: Relay, steps: list[dict[str, Any]], **kw: Any) -> GunProcess:
        kw.setdefault("tmpdir", self.tmpdir)
        p = GunProcess(relay, steps, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            p.kill()


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Clients]:
    c = Clients(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def soul(request: pytest.FixtureRequest) -> str:
    """A soul no other test (or earlier run on the same data dir) uses."""
    return f"interop-{request.node.name[:40]}-{rid()}".replace("[", "-").replace("]", "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (which downloads no browser of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True, timeout=30000)
        try:
            yield b
        finally:
            b.close()
