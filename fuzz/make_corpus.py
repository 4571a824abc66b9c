"""Write the fuzzer's seed corpus, fuzz/seeds/, from the recorded vectors.

* every distinct frame a real GunJS client or relay sent (tests/vectors/frames.json);
* every SEA vector (tests/vectors/sea.json) as the put frame that would carry it, so the fuzzer
  starts from validly signed values, certificates, alias lists, content hashes and <?N souls;
* a few gets covering the lex forms and the budget.

Files are named by the SHA-1 of their content (libFuzzer's own convention), so re-running is
idempotent. Usage: .venv/bin/python fuzz/make_corpus.py [OUT_DIR]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"


def frames() -> list[str]:
    out = [frame["text"] for frame in json.loads((VECTORS / "frames.json").read_text("utf-8"))]
    for i, v in enumerate(json.loads((VECTORS / "sea.json").read_text("utf-8"))):
        soul, key = v["soul"], v["key"]
        node = {"_": {"#": soul, ">": {key: v["state"]}}, key: v["value"]}
        out.append(json.dumps({"#": f"sea{i}", "put": {soul: node}}, separators=(",", ":")))  # lone surrogates escaped
    gets = [
        {"#": "g1", "get": {"#": "lexA", ".": {"*": "ap"}, "%": 50000}},
        {"#": "g2", "get": {"#": "lexA", ".": {">": "b", "<": "c", "-": True}}},
        {"#": "g3", "get": {"#": {"*": "room/"}, "%": 30}},
        {"#": "g4", "get": {"#": {"=": "room/1"}, ".": {"=": "k"}}},
        {"#": "g5", "get": {"#": "s", ".": ""}, "%": 1},
    ]
    out.extend(json.dumps(g, separators=(",", ":")) for g in gets)
    return out


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "seeds"
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for text in frames():
        data = text.encode("utf-8")
        path = target / hashlib.sha1(data).hexdigest()
        if not path.exists():
            path.write_bytes(data)
            written += 1
    print(f"{written} new seed files in {target} ({len(list(target.iterdir()))} in all)")


if __name__ == "__main__":
    main()
