"""The operator CLI on a stopped relay's data folder (``--data`` without ``--url``)."""

import asyncio
import json
import sqlite3
import subprocess
import sys
import time

from gunrelay.core.graph import Field
from gunrelay.storage.sqlite import SQLiteStore


def gunrelay(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], capture_output=True, text=True, timeout=120)


async def test_reset_on_a_stopped_relays_store(tmp_path):
    data = tmp_path / "data"
    store = SQLiteStore(data / "gunrelay.sqlite3")
    await store.open()
    old = time.time() * 1000 - 60_000
    await store.merge([Field(f"chat/{i // 10}", f"m{i % 10}", f"text {i}", old) for i in range(5000)])
    await store.close()

    done = await asyncio.to_thread(gunrelay, "reset", "--data", str(data), "--reason", "offline wipe")
    assert done.returncode == 0, done.stderr
    assert "purged: " in done.stderr and "5000" in done.stderr  # the progress bar counted the purge
    record = json.loads(done.stdout)["record"]

    history = await asyncio.to_thread(gunrelay, "resets", "--data", str(data))
    [entry] = json.loads(history.stdout)["resets"]
    assert entry["record"]["reset_id"] == record["reset_id"] and (entry["purge"]["done"], entry["purge"]["fields_removed"]) == (True, 5000)
    db = sqlite3.connect(data / "gunrelay.sqlite3")
    assert db.execute("SELECT count(*) FROM fields WHERE soul LIKE 'chat/%'").fetchone()[0] == 0
    pub = json.loads((data / "identity.json").read_text())["pub"]
    published = dict(db.execute("SELECT key, value FROM fields WHERE soul=?", (f"~{pub}/reset",)).fetchall())
    assert json.loads(json.loads(published["reset_id"]))[":"] == record["reset_id"]
    db.close()


async def test_the_offline_cli_refuses_a_store_a_running_relay_holds(live_relay, tmp_path):
    done = await asyncio.to_thread(gunrelay, "reset", "--data", str(tmp_path / "data"))
    assert done.returncode != 0 and "in use by a running relay" in done.stderr
    assert live_relay.app.state.control.history() == []


async def test_import_radata_says_what_is_wrong_and_a_dry_run_writes_nothing(tmp_path):
    missing = await asyncio.to_thread(gunrelay, "import", "radata", str(tmp_path / "nowhere"), "--data", str(tmp_path / "d"))
    assert missing.returncode != 0 and "is not a folder" in missing.stderr and "Traceback" not in missing.stderr
    neither = await asyncio.to_thread(gunrelay, "import", "radata", str(tmp_path))
    assert neither.returncode != 0 and "give --data DIR" in neither.stderr and "Traceback" not in neither.stderr

    folder = tmp_path / "radata"
    folder.mkdir()
    state = time.time() * 1000 - 60_000
    (folder / "!").write_text(json.dumps({"a\x1b": {"k": {"": {":": "v", ">": state}}, "n": {"": {":": 1, ">": state}}}}))
    (folder / "%1C").write_text(json.dumps({"!": {"": 1}}))
    data = tmp_path / "data"
    dry = await asyncio.to_thread(gunrelay, "import", "radata", str(folder), "--data", str(data), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (json.loads(dry.stdout)["imported"], json.loads(dry.stdout)["files"]) == (2, 1)
    db = sqlite3.connect(data / "gunrelay.sqlite3")
    assert db.execute("SELECT count(*) FROM fields WHERE soul = 'a'").fetchone()[0] == 0
    db.close()
    done = await asyncio.to_thread(gunrelay, "import", "radata", str(folder), "--data", str(data))
    assert done.returncode == 0 and json.loads(done.stdout)["imported"] == 2, done.stderr
    db = sqlite3.connect(data / "gunrelay.sqlite3")
    assert db.execute("SELECT key, value FROM fields WHERE soul = 'a' ORDER BY key").fetchall() == [("k", '"v"'), ("n", "1")]
    db.close()
