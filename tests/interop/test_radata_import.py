"""``gunrelay import radata`` on a folder a real Node GUN relay wrote (npm gun 0.2020.1241, default
RAD storage: ``tools/node_relay.js``), filled by real GunJS clients (``js/gun_driver.js``).

The truth is read twice, both times by GunJS: the graph a GunJS client reads through the Node
relay before it stops, and every record of the stopped relay's folder read by GunJS's own RAD code
(``js/rad_dump.js``). After the import, every record must be in gunrelay's store with the same
value and state, and a GunJS client must read the same graph through gunrelay. Damaged files,
fenced fields and a forged SEA value are skipped and counted; export then import into an empty
relay gives the same store; ``--url`` imports through a running relay.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from interop_support import REPO, Relay, run_gun

pytestmark = pytest.mark.interop

RAD_DUMP = Path(__file__).resolve().parent / "js" / "rad_dump.js"
STORE = "gunrelay.sqlite3"
BLOB = "x" * 65536  # a 64 KB string
BULK = 20  # 64 KB strings more: about 1.3 MB, so RAD splits its file
WIDE = {f"k{i:03d}": i for i in range(500)}  # a 500-key node
PROFILE_NAME = "Alice Liddell"  # a SEA user's field, forged in one test

FILL = [
    {"op": "wait_connected"},
    {"op": "put", "path": ["people/bob"], "value": {"name": "Bob", "age": 42, "ok": True, "address": {"city": "Paris", "zip": "75001"}}},
    {"op": "put", "path": ["people/bob", "gone"], "value": "soon gone"},
    {"op": "put", "path": ["people/bob", "gone"], "value": None},  # a delete
    {"op": "set", "path": ["chat/list"], "items": [{"text": "one"}, {"text": "two"}, {"text": "three"}]},
    {"op": "put", "path": ["big", "blob"], "value": BLOB},
    {"op": "put", "path": ["wide"], "value": WIDE},
    {"op": "put", "path": ["ünïcødé/ключ", "clé 🔑"], "value": "値 ✓ 😀"},
    {"op": "put", "path": ["numbers"], "value": {"pi": 3.14159, "neg": -7, "no": False}},
    *({"op": "put", "path": [f"bulk/{i}", "blob"], "value": chr(ord("a") + i) * 65536} for i in range(BULK)),
    {"op": "user_create", "alias": "alice-rad", "pass": "correct horse battery", "timeout": 15000},
    {"op": "user_auth", "alias": "alice-rad", "pass": "correct horse battery", "name": "auth", "timeout": 15000},
    {"op": "user_put", "path": ["profile", "name"], "value": PROFILE_NAME},
    {"op": "user_put", "path": ["profile", "city"], "value": "Oxford"},
    {"op": "sleep", "ms": 800},  # RAD writes in batches (250 ms): let the last one land
]


def read_steps(pub: str) -> list[dict[str, Any]]:
    """What a GunJS app reads: the same steps through either relay."""
    return [
        {"op": "wait_connected"},
        {"op": "once", "path": ["people/bob", "name"], "name": "name"},
        {"op": "once", "path": ["people/bob", "address", "city"], "name": "city"},
        {"op": "once", "path": ["people/bob", "gone"], "name": "gone"},
        {"op": "map_once", "path": ["chat/list"], "expect": 3, "name": "list"},
        {"op": "once", "path": ["big", "blob"], "name": "blob"},
        {"op": "once", "path": ["wide"], "name": "wide", "wait": 500},
        {"op": "once", "path": ["ünïcødé/ключ", "clé 🔑"], "name": "unicode"},
        {"op": "once", "path": ["numbers"], "name": "numbers", "wait": 300},
        {"op": "once", "path": [f"bulk/{BULK - 1}", "blob"], "name": "bulk"},
        {"op": "user_once", "pub": pub, "path": ["profile", "name"], "name": "profile"},
    ]


def reads(result) -> dict[str, Any]:
    assert result.error is None and not any(r.get("timeout") for r in result.results), result
    assert all(r["defined"] for r in result.results if "defined" in r), result
    return {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in result.results if "name" in r}


def gunrelay(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def rad_dump(folder: Path, scratch: Path) -> list[dict[str, Any]]:
    """Every record of a RAD folder, as GunJS's own RAD code reads it (on a copy)."""
    copy = scratch / "dump-copy"
    shutil.copytree(folder, copy)
    done = subprocess.run(["node", str(RAD_DUMP), str(copy)], cwd=REPO, capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines[-1]["done"], (done.returncode, done.stderr[-2000:], lines[-3:])
    records = lines[:-1]
    assert len(records) == lines[-1]["count"] and not any("error" in r for r in records)
    assert len({(r["soul"], r["key"]) for r in records}) == len(records)  # a cleanly stopped relay: no key in two files
    shutil.rmtree(copy)
    return records


def rows(data: Path) -> dict[tuple[str, str], tuple[Any, Any]]:
    db = sqlite3.connect(data / STORE)
    try:
        return {(s, k): (json.loads(v), st) for s, k, v, st in db.execute("SELECT soul, key, value, state FROM fields")}
    finally:
        db.close()


def raw_rows(data: Path) -> list[tuple]:
    db = sqlite3.connect(data / STORE)
    try:
        return db.execute("SELECT soul, key, value, state FROM fields ORDER BY soul, key").fetchall()
    finally:
        db.close()


class NodeFolder:
    """A stopped Node relay's RAD folder, with what GunJS read through that relay and from the files."""

    def __init__(self, folder: Path, pub: str, read_through_node: dict[str, Any], records: list[dict[str, Any]]):
        self.folder = folder
        self.pub = pub
        self.read_through_node = read_through_node
        self.records = records


@pytest.fixture(scope="module")
def node_folder(tmp_path_factory) -> NodeFolder:
    base = tmp_path_factory.mktemp("node-relay")
    relay = Relay(base / "data", base / "logs", target="node").start()
    try:
        filled = run_gun(relay, FILL, sea=True, deadline_ms=120_000, tmpdir=base)
        assert filled.error is None and not any(r.get("timeout") for r in filled.results), filled
        pub = filled["auth"]["pub"]
        assert pub, filled
        read = reads(run_gun(relay, read_steps(pub), sea=True, deadline_ms=60_000, tmpdir=base))
    finally:
        relay.stop()
    folder = base / "data" / "radata"
    records = rad_dump(folder, base)
    return NodeFolder(folder, pub, read, records)


def test_what_the_node_relay_wrote_is_what_the_clients_put(node_folder):
    """The fixture's truth is the real thing: RAD split the folder, and holds what was put."""
    files = [p.name for p in node_folder.folder.iterdir()]
    assert "!" in files and "%1C" in files and len(files) >= 3, files  # split: more than one data file
    by_key = {(r["soul"], r["key"]): r for r in node_folder.records}
    assert by_key[("people/bob", "gone")]["value"] is None and by_key[("big", "blob")]["value"] == BLOB
    assert sum(1 for soul, _ in by_key if soul == "wide") == 500
    assert by_key[("ünïcødé/ключ", "clé 🔑")]["value"] == "値 ✓ 😀"
    assert any(soul.startswith(f"~{node_folder.pub}") for soul, _ in by_key)
    read = node_folder.read_through_node
    assert read["name"]["value"] == "Bob" and read["list"]["count"] == 3 and read["profile"]["value"] == PROFILE_NAME


@pytest.fixture(scope="module")
def imported(node_folder, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    data = tmp_path_factory.mktemp("imported") / "data"
    done = gunrelay("import", "radata", str(node_folder.folder), "--data", str(data))
    assert done.returncode == 0, done.stderr
    return data, json.loads(done.stdout)


def test_every_field_comes_over_with_its_value_and_state(node_folder, imported):
    data, report = imported
    records = node_folder.records
    assert (report["imported"], report["kept"], report["fenced"], report["refused"], report["malformed"]) == (len(records), 0, 0, 0, 0), report
    assert report["files_skipped"] == 0 and report["files"] == len(list(node_folder.folder.iterdir())) - 1  # all but %1C
    stored = rows(data)
    for record in records:
        assert stored[(record["soul"], record["key"])] == (record["value"], record["state"]), record


def test_a_gunjs_client_reads_the_same_graph_through_gunrelay(node_folder, imported, tmp_path):
    data, _ = imported
    served = tmp_path / "served"
    shutil.copytree(data, served)
    relay = Relay(served, tmp_path / "logs", target="ours").start()
    try:
        read = reads(run_gun(relay, read_steps(node_folder.pub), sea=True, deadline_ms=60_000, tmpdir=tmp_path))
    finally:
        relay.stop()
    assert read == node_folder.read_through_node


def test_damaged_files_fenced_fields_and_a_forged_sea_value_are_skipped_and_counted(node_folder, tmp_path):
    folder = tmp_path / "radata"
    shutil.copytree(node_folder.folder, folder)
    first = (folder / "!").read_text()
    (folder / "%7Etruncated").write_text(first[: len(first) // 2])  # a file cut short
    (folder / "%7Ebinary").write_bytes(b"\x00\xff" * 100)
    forged_in = [p for p in folder.iterdir() if PROFILE_NAME in p.read_text(errors="replace")]
    assert len(forged_in) == 1
    forged_in[0].write_text(forged_in[0].read_text().replace(PROFILE_NAME, "Mallory Evil"))
    data = tmp_path / "data"
    reset = gunrelay("reset", "--data", str(data), "--scope", "people", "--reason", "before the import")
    assert reset.returncode == 0, reset.stderr

    done = gunrelay("import", "radata", str(folder), "--data", str(data))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    people = [r for r in node_folder.records if r["soul"] == "people" or r["soul"].startswith("people/")]
    assert len(people) >= 6
    assert sorted(s["file"] for s in report["skipped_files"]) == ["%7Ebinary", "%7Etruncated"], report
    assert "%7Etruncated: skipped" in done.stderr and "%7Ebinary: skipped" in done.stderr
    assert (report["fenced"], report["refused_by_reason"]) == (len(people), {"sea": 1}), report
    assert report["imported"] == len(node_folder.records) - len(people) - 1
    stored = rows(data)
    assert not any(soul.startswith("people") for soul, _ in stored)
    assert not any(v == "Mallory Evil" or (isinstance(v, str) and "Mallory" in v) for v, _ in stored.values())
    assert stored[("big", "blob")][0] == BLOB


def test_export_then_import_into_an_empty_relay_gives_the_same_store(imported, tmp_path):
    data, _ = imported
    dump = tmp_path / "dump.jsonl"
    done = gunrelay("export", "--data", str(data), "--out", str(dump))
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "empty"
    loaded = gunrelay("import", "jsonl", str(dump), "--data", str(empty))
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["imported"] == len(dump.read_text().splitlines()) - 1
    assert raw_rows(empty) == raw_rows(data)


def test_import_and_export_through_a_running_relay_with_url(node_folder, tmp_path):
    relay = Relay(tmp_path / "live", tmp_path / "logs", target="ours").start()
    try:
        token = (tmp_path / "live" / "admin-token").read_text().strip()
        refused = gunrelay("import", "radata", str(node_folder.folder), "--data", str(tmp_path / "live"))
        assert refused.returncode != 0 and "in use by a running relay" in refused.stderr

        dry = gunrelay("import", "radata", str(node_folder.folder), "--url", relay.http_url, f"--token={token}", "--dry-run")
        assert dry.returncode == 0 and json.loads(dry.stdout)["imported"] == len(node_folder.records), dry.stderr
        done = gunrelay("import", "radata", str(node_folder.folder), "--url", relay.http_url, f"--token={token}")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["imported"], report["refused"], report["fenced"], report["files_skipped"]) == (len(node_folder.records), 0, 0, 0), report
        read = reads(run_gun(relay, read_steps(node_folder.pub), sea=True, deadline_ms=60_000, tmpdir=tmp_path))
        assert read == node_folder.read_through_node

        again = gunrelay("import", "radata", str(node_folder.folder), "--url", relay.http_url, f"--token={token}")
        assert json.loads(again.stdout)["kept"] == len(node_folder.records)  # HAM: nothing changes twice

        exported = gunrelay("export", "--url", relay.http_url, f"--token={token}")
        assert exported.returncode == 0, exported.stderr
        lines = [json.loads(line) for line in exported.stdout.splitlines()]
        assert lines[0]["format"] == "gunrelay-jsonl"
        by_key = {(f["soul"], f["key"]): (f["value"], f["state"]) for f in lines[1:]}
        for record in node_folder.records:
            assert by_key[(record["soul"], record["key"])] == (record["value"], record["state"]), record
    finally:
        relay.stop()
