"""Fixtures for the headless-Chromium interop test (shares the relay harness of tests/interop)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from interop_support import GUN_DIR, TARGET, Relay  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session", autouse=True)
def _browser_prerequisites() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH")
    if not (GUN_DIR / "gun.js").exists():
        pytest.skip("node_modules/gun is not installed (npm ci in the repo root)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp(f"browser-relay-{TARGET}")
    r = Relay(base / "data", base / "logs")
    r.start()
    try:
        yield r
    finally:
        r.stop()
