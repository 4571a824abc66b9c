"""A Node GUN relay's RAD folder, read by our own reader (core/radata.py, server/radata.py) and
imported through the one import path (server/interchange.py ``FieldImport``).

The files here are made by hand in the shapes npm gun 0.2020.1241 writes (the JSON radix tree of
``Radisk``'s ``jsonify``, as seen in a real relay's folder) and, for RAD's own text encoding, by
GunJS's ``Radisk.encode`` and ``Radix`` run in Node. The interop test
(tests/interop/test_radata_import.py) reads folders a real Node relay wrote.
"""

import json
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gunrelay.core import radata, sea
from gunrelay.core.graph import Field
from gunrelay.server.interchange import ImportReport, Malformed
from gunrelay.server.radata import RadFolder, read_folder, data_files

from test_interchange import Side, rows

ESC = "\x1b"
ROOT = Path(__file__).resolve().parents[2]


def tree(records: dict[str, tuple]) -> dict:
    """A radix tree of nested objects as radix.js builds it, from full key -> (value, state)."""
    root: dict = {}
    for full in sorted(records):
        value, state = records[full]
        node = root
        rest = full
        while True:
            shared = next((k for k in node if k and rest.startswith(k)), None)
            if shared is None:
                split = next((k for k in node if k and k[0] == rest[0]), None)
                if split is None:
                    node[rest] = {"": {":": value, ">": state}}
                    break
                common = next(i for i in range(len(split) + 1) if i == len(split) or i == len(rest) or split[i] != rest[i])
                node[split[:common]] = {split[common:]: node.pop(split)}
                continue
            node = node[shared]
            rest = rest[len(shared):]
            if not rest:
                node[""] = {":": value, ">": state}
                break
    return root


RECORDS = {
    f"people/bob{ESC}name": ("Bob", 1_700_000_000_000),
    f"people/bob{ESC}age": (42, 1_700_000_000_001),
    f"people/bob{ESC}ok": (True, 1_700_000_000_002),
    f"people/bob{ESC}no": (False, 1_700_000_000_003),
    f"people/bob{ESC}gone": (None, 1_700_000_000_004),
    f"people/bob{ESC}address": ({"#": "people/bob/address"}, 1_700_000_000_005.001),
    f"people/bob/address{ESC}city": ("Paris", 1_700_000_000_006),
    f"ünï/ключ{ESC}clé 🔑": ("値 ✓\u001f>", 1_700_000_000_007),
}


def ordered(records) -> list:
    return sorted(records, key=repr)


def expected() -> list[radata.RadRecord]:
    return ordered(radata.RadRecord(*full.split(ESC, 1), value, state) for full, (value, state) in RECORDS.items())


def test_a_json_radix_file_gives_every_field_with_its_value_and_state():
    text = json.dumps(tree(RECORDS), ensure_ascii=False)
    assert "people/bob" in text and '"n"' in text  # the keys really are split into shared fragments
    assert ordered(radata.parse_file(text)) == expected()


def test_rad_text_encoding_written_by_gunjs_is_read_too(tmp_path):
    # GunJS's own Radix and Radisk.encode, serialised as radisk's text writer (r.write's f.each) does
    script = f"""
    const Radix = require('gun/lib/radix'); const Radisk = require('gun/lib/radisk');
    const rad = Radix(); const records = {json.dumps(RECORDS)};
    for (const k in records) {{ const [v, s] = records[k]; rad(k, Radisk.encode(v, null, '\\u001b') + '>' + Radisk.encode(s, null, '\\u001b')); }}
    let text = '';
    Radix.map(rad, (val, key, k, pre) => {{
      text += Radisk.encode(pre.length) + '#' + Radisk.encode(k) + (undefined === val ? '' : ':' + Radisk.encode(val)) + '\\n';
    }}, true);
    process.stdout.write('\\n' + JSON.stringify(text));
    """
    done = subprocess.run(["node", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = json.loads(done.stdout.splitlines()[-1])  # after GunJS's greeting
    assert text.startswith("\x1f+0\x1f#") and not text.startswith("{")
    parsed = radata.parse_file(text)
    # Radisk.encode writes a relation as "#undefined" (its `tmp` is never set): GunJS reads that
    # back as a relation to the soul "undefined", and so do we: the file says so
    relation = radata.RadRecord("people/bob", "address", {"#": "undefined"}, 1_700_000_000_005.001)
    assert ordered(parsed) == ordered([relation if r.key == "address" else r for r in expected()])
    with pytest.raises(radata.DamagedFile):
        radata.parse_file(text[:-7])  # truncated inside the last token


@pytest.mark.parametrize(
    "text",
    [
        '{"people/bob":{"\\u001bname":{"":{":":"Bob",">":1',  # truncated JSON
        "[1, 2]",
        '{"a":{"\\u001bb":"not a node"}}'.replace('"not a node"', "7"),  # a node that is not an object
        "\x1f+1\x1f#\x1f\"a\x1f\n",  # RAD text without a root
        "\x1f+0\x1f#\x1f\"a\x1b\x1f:\x1f\"x\x1f",  # RAD text without its final newline
        "\x1f+0\x1f#\x1f\"a\x1b\x1f:\x1f?x\x1f\n",  # an unknown value type
        "garbage",
    ],
)
def test_a_damaged_file_is_refused_whole(text):
    with pytest.raises(radata.DamagedFile):
        radata.parse_file(text)


def test_entries_that_are_not_fields_are_named():
    text = json.dumps({
        "nosep": {"": {":": 1, ">": 1}},
        f"a{ESC}nostate": {"": {":": 1}},
        f"a{ESC}odd": {"": [1, 2]},
        f"a{ESC}legacy": {"": f'{ESC}"old text{ESC}>{ESC}+1700000000000{ESC}'},
        f"a{ESC}legacybad": {"": "no separators"},
    })
    parsed = {getattr(p, "key"): p for p in radata.parse_file(text)}
    assert parsed["legacy"] == radata.RadRecord("a", "legacy", "old text", 1_700_000_000_000)
    assert {k for k, p in parsed.items() if isinstance(p, radata.BadEntry)} == {
        "nosep", f"a{ESC}nostate", f"a{ESC}odd", f"a{ESC}legacybad",
    }


def test_file_names_and_the_directory_file():
    assert radata.is_directory("%1C") and not radata.is_directory("!") and not radata.is_directory("%E0%A4%A")
    assert radata.file_key("people%2Fbob%1Bname") == f"people/bob{ESC}name"


def write_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "!").write_text(json.dumps(tree(RECORDS)))
    (folder / "%1C").write_text(json.dumps({"!": {"": 1}, "zz": {"": 1}}))  # RAD's file list: not data
    (folder / "zz").write_text(json.dumps(tree({f"zz{ESC}k": ("v", 1_700_000_000_010), f"zz{ESC}bad": ([1], 1)})))
    (folder / "truncated").write_text(json.dumps(tree({f"t{ESC}k": ("v", 1)}))[:-3])
    (folder / "binary").write_bytes(b"{\xff\xfe}")
    (folder / "empty").write_text("")


def test_a_folder_skips_damaged_files_by_name_and_goes_on(tmp_path):
    write_folder(tmp_path / "radata")
    skipped: list[tuple[str, str]] = []
    files = data_files(tmp_path / "radata")
    assert [f.name for f in files] == ["!", "binary", "empty", "truncated", "zz"]
    entries = list(read_folder(files, lambda name, why: skipped.append((name, why))))
    assert [name for name, _ in skipped] == ["binary", "empty", "truncated"]
    assert "not UTF-8" in skipped[0][1] and "JSON" in skipped[2][1]
    fields = [e for e in entries if isinstance(e, Field)]
    assert len(fields) == len(RECORDS) + 1 and Field("zz", "k", "v", 1_700_000_000_010) in fields
    [bad] = [e for e in entries if isinstance(e, Malformed)]
    assert bad.where.startswith("zz: ") and "arrays" in bad.reason


@pytest.fixture
async def side(tmp_path):
    (tmp_path / "dst").mkdir()
    side = await Side(tmp_path / "dst").start()
    yield side
    await side.stop()


async def test_import_counts_fenced_forged_kept_and_malformed_and_stores_the_rest(tmp_path, side):
    now = time.time() * 1000
    old = now - 60_000
    user = ec.generate_private_key(ec.SECP256R1())
    soul = f"~{sea.pub_of(user)}"
    forged = sea.sign_field(user, soul, "name", "Alice", old).replace("Alice", "Mallory")
    records = {
        f"chat/1{ESC}text": ("before the reset", old),  # fenced by the reset below
        f"keep{ESC}k": ("older", old),  # the store holds a newer value: kept
        f"{soul}{ESC}alias": (sea.sign_field(user, soul, "alias", "alice", old), old),
        f"{soul}{ESC}name": (forged, old),  # refused: the signature does not match
        f"future{ESC}k": ("too soon", now + 3_600_000),  # refused: far ahead of the clock
        f"fine{ESC}k": ("imported", old),
    }
    folder = tmp_path / "radata"
    folder.mkdir()
    (folder / "!").write_text(json.dumps(tree(records)))
    (folder / "zz").write_text('{"oops')
    await side.store.merge([Field("keep", "k", "newer", now)])
    await side.control.issue("chat", reason="test")
    await side.settle()

    before = rows(side.folder)
    dry = RadFolder(folder, dry_run=True)
    await side.interchange.import_entries(dry.entries(lambda path, why: None), dry.report)
    assert rows(side.folder) == before  # a dry run wrote nothing

    rad = RadFolder(folder, dry_run=False)
    seen: list[Path] = []
    await side.interchange.import_entries(rad.entries(lambda path, why: seen.append(path)), rad.report)
    result = rad.report.as_json()
    assert seen == [folder / "zz"] and result["skipped_files"][0]["file"] == "zz"
    assert (result["files"], result["files_skipped"], result["fenced"], result["kept"], result["imported"]) == (2, 1, 1, 1, 2), result
    assert result["refused_by_reason"] == {"future_state": 1, "sea": 1}
    assert dry.report.as_json()["imported"] == 3  # HAM against the store is not judged in a dry run
    stored = {(s, k): v for s, k, v, _ in rows(side.folder)}
    assert stored[("fine", "k")] == '"imported"' and stored[("keep", "k")] == '"newer"'
    assert (soul, "alias") in stored and (soul, "name") not in stored and ("chat/1", "text") not in stored


def test_an_empty_report_says_it_is_radata():
    assert set(ImportReport(source="radata").as_json()) >= {"files", "files_skipped", "skipped_files", "malformed_entries"}
