"""``gunrelay import radata`` and ``gunrelay export`` on a large RAD folder: rate, time, memory.

1. ``bench/rad_fill.js`` writes a RAD folder with GunJS's own storage code (npm gun 0.2020.1241's
   ``lib/radisk.js`` over ``lib/rfs.js``, what a Node relay writes with), SOULS x KEYS fields
   (default 100,000 x 10 = 1,000,000).
2. ``gunrelay import radata FOLDER --data DIR`` into an empty data folder, run under
   ``/usr/bin/time`` (wall time and peak RSS of the whole command: Python start, the reader, the
   checks, SQLite). Rate = fields imported / wall time.
3. ``gunrelay export --data DIR --out FILE`` of the result, timed the same way.

Usage: .venv/bin/python bench/radata_import.py [--souls N] [--keys K] [--keep]
Prints a table, and every figure as JSON in bench/results/radata-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILL = REPO / "bench" / "rad_fill.js"
TIMEOUT_S = 3600  # no step may run longer


def timed(argv: list[str], scratch: Path, name: str) -> dict:
    """Run argv under /usr/bin/time; its wall time, peak RSS, stdout and exit code."""
    stats = scratch / f"{name}.time"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall, rss_kb = stats.read_text().split()[-2:]
    return {"wall_s": float(wall), "peak_rss_mb": int(rss_kb) / 1024, "stdout": done.stdout, "stderr": done.stderr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--souls", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (RAD folder, data folder, export)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="gunrelay-radata-bench-"))
    try:
        folder, data, dump = scratch / "radata", scratch / "data", scratch / "dump.jsonl"
        fill = timed(["node", str(FILL), str(folder), str(args.souls), str(args.keys)], scratch, "fill")
        files = [p for p in folder.iterdir() if p.name != "%1C"]
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        python = sys.executable
        imported = timed([python, "-m", "gunrelay", "import", "radata", str(folder), "--data", str(data)], scratch, "import")
        report = json.loads(imported["stdout"])
        exported = timed([python, "-m", "gunrelay", "export", "--data", str(data), "--out", str(dump)], scratch, "export")
        exported_fields = sum(1 for _ in dump.open("rb")) - 1
        figures = {
            "written_fields": args.souls * args.keys, "rad_files": len(files), "rad_mb": round(size_mb, 1),
            "fill_s": fill["wall_s"],
            "import": {
                "fields_imported": report["imported"], "malformed": report["malformed"], "files_skipped": report["files_skipped"],
                "refused": report["refused"], "wall_s": imported["wall_s"], "peak_rss_mb": round(imported["peak_rss_mb"], 1),
                "fields_per_s": round(report["imported"] / imported["wall_s"]),
            },
            "export": {
                "fields": exported_fields, "wall_s": exported["wall_s"], "peak_rss_mb": round(exported["peak_rss_mb"], 1),
                "fields_per_s": round(exported_fields / exported["wall_s"]), "mb": round(dump.stat().st_size / 1e6, 1),
            },
            "malformed_examples": report["malformed_entries"][:5],
        }
        results = REPO / "bench" / "results"
        results.mkdir(exist_ok=True)
        out = results / f"radata-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(figures, indent=2))
        i, e = figures["import"], figures["export"]
        print(f"RAD folder: {figures['written_fields']:,} fields written by GunJS radisk in {figures['fill_s']} s: "
              f"{len(files)} files, {figures['rad_mb']} MB")
        print(f"import radata: {i['fields_imported']:,} fields in {i['wall_s']} s = {i['fields_per_s']:,} fields/s, "
              f"peak RSS {i['peak_rss_mb']} MB; malformed {i['malformed']}, files skipped {i['files_skipped']}, refused {i['refused']}")
        print(f"export: {e['fields']:,} fields in {e['wall_s']} s = {e['fields_per_s']:,} fields/s, peak RSS {e['peak_rss_mb']} MB, {e['mb']} MB")
        print(f"figures: {out}")
    finally:
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
