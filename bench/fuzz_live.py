#!/usr/bin/env python3
"""Fuzz a live relay: a million generated frames against ``gunrelay serve`` in a subprocess.

Usage (from the repo root):
    .venv/bin/python bench/fuzz_live.py [--frames 1000000] [--conns 8] [--window 32] [--seed 1]

The relay is started on a free 127.0.0.1 port with a fresh temp data dir and no message-rate
limit (``--max-messages-per-s 0``: the fuzzer is one client per connection sending as fast as
the relay answers, not a flood to refuse). The frames come from ``tests/server/live_fuzz.py``
(the generator and checker the in-suite test uses too): good puts and gets mixed with many
shapes of bad input, each classified by what the relay must answer (an ack, an answer, an
``err`` naming the message, a ``dam`` error, a close of that socket, or silence by design; see
that module's docstring). Checked: every frame classed bad gets its error, every good one its
correct answer, no answer takes longer than ``--timeout`` (a stall), a put answering another
connection's message reaches it with only the fields that passed, values read back correctly at
the end, the relay process is alive with ``/health`` ok and ``GET /-/api/peers`` answering, and
it exits cleanly on SIGTERM.

Output: a summary on stdout and every figure in ``bench/results/fuzz-live-<timestamp>.json``
(``bench/results/`` is git-ignored). Every wait is bounded; the relay is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests" / "server"))
sys.path.insert(0, str(ROOT / "bench"))

import live_fuzz  # noqa: E402  (tests/server/live_fuzz.py: the generator and the checker)
from run import CLK_TCK, cpu_ticks, free_port, hwm_kb, rss_kb  # noqa: E402  (bench/run.py: /proc helpers)


def memory_kb(pid: int) -> dict[str, int | None]:
    return {"VmRSS": rss_kb(pid), "VmHWM": hwm_kb(pid)}


def cpu_seconds(pid: int) -> float | None:
    ticks = cpu_ticks(pid)
    return None if ticks is None else ticks / CLK_TCK


class RelayProcess:
    """``gunrelay serve`` in a subprocess: started, waited for, stopped by its PID."""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.port = free_port()
        self.data = workdir / "data"
        self.log_path = workdir / "relay.log"
        self.token = secrets.token_urlsafe(16)
        self.cmd = [
            str(ROOT / ".venv" / "bin" / "gunrelay"), "serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--data", str(self.data),
            "--max-messages-per-s", "0",
            "--max-fields-per-s", "0",
            "--max-frame-bytes", str(args.max_frame_bytes),
            "--storage", args.storage,
            "--sqlite-synchronous", args.sqlite_synchronous,
            "--admin-token", self.token,
            "--log-level", "warning",
        ]
        env = {**os.environ, "GUNRELAY_STATE_DIR": str(workdir / "state")}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self.pid = self.proc.pid

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gun"

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the relay exited with {self.proc.returncode} at start; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.http + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"the relay did not answer /health within {timeout} s; see {self.log_path}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> dict:
        """SIGTERM by PID, then SIGKILL after 15 s; how it ended."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
                self.log.close()
                return {"exit_code": self.proc.returncode, "clean": False, "killed": True}
        self.log.close()
        return {"exit_code": self.proc.returncode, "clean": self.proc.returncode == 0, "killed": False}

    def log_figures(self) -> dict:
        """What the relay wrote while fuzzed: tracebacks and error lines, by exception type."""
        text = self.log_path.read_text(errors="replace")
        exceptions = Counter(re.findall(r"^(\w+(?:Error|Exception)): ", text, flags=re.M))
        errors = Counter()
        for line in text.splitlines():
            m = re.search(r"\b(ERROR|CRITICAL)\b[: ]+(?:[\w.]+: )?(.{0,70})", line)
            if m:
                errors[m.group(2).strip()] += 1
        return {
            "bytes": len(text),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "exceptions_by_type": dict(exceptions.most_common()),
            "error_lines": dict(errors.most_common(15)),
        }


def print_summary(result: dict) -> None:
    s = result["summary"]
    print()
    print(f"frames {s['frames']:,} ({s['messages']:,} GUN messages) in {s['duration_s']} s: {s['frames_per_s']:,} frames/s")
    print("frames by class:", ", ".join(f"{k} {v:,}" for k, v in sorted(s["frames_by_class"].items())))
    print(f"errors expected {s['errors_expected']:,}, received as expected {s['errors_received_as_expected']:,}")
    print("replies:", ", ".join(f"{k} {v:,}" for k, v in sorted(s["replies"].items())))
    print(f"stalls {s['stalls']}; expected closes {s['expected_closes']}, "
          f"reconnects {s['reconnects']}, unexpected closes {s['unexpected_closes']}")
    print(f"latency ms p50 {s['latency_ms']['p50']} p99 {s['latency_ms']['p99']} max {s['latency_ms']['max']}")
    print(f"final read-back: {s['final_readback']}")
    print(f"puts answering another connection's message: {s['puts_answering_another_peer']}")
    print(f"relay alive at the end: {result['relay']['alive_at_end']}, /health: {s['health'].get('status')}, "
          f"peers API: {s['health'].get('peers_api')} ({s['health'].get('peers_listed')} peers), stop: {result['relay']['stop']}")
    print(f"relay memory kB start {result['relay']['memory_start_kb']} end {result['relay']['memory_end_kb']}; "
          f"CPU s {result['relay']['cpu_s']}")
    print(f"relay log: {result['relay']['log']['tracebacks']} tracebacks {result['relay']['log']['exceptions_by_type']}")
    print("violations:", json.dumps(s["violations"], indent=1) if s["violations"] else "none")
    if s["violations"]:
        print("examples:", json.dumps(s["examples"], indent=1, ensure_ascii=True)[:4000])
    print("OK" if result["ok"] else "FAILED")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--conns", type=int, default=8, help="websocket connections (default %(default)s)")
    parser.add_argument("--window", type=int, default=32, help="frames in flight per connection (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=15.0, help="an answer later than this is a stall (s)")
    parser.add_argument("--max-frame-bytes", type=int, default=256 * 1024,
                        help="the relay's --max-frame-bytes (default %(default)s: oversized frames stay cheap)")
    parser.add_argument("--storage", default="sqlite")
    parser.add_argument("--sqlite-synchronous", default="FULL")
    parser.add_argument("--oversize", type=int, default=1000, help="frames over max-frame-bytes (dam error)")
    parser.add_argument("--close-big", type=int, default=100, help="frames over the websocket limit (closed 1009)")
    parser.add_argument("--huge", type=int, default=10, help="100 MB frames (closed 1009)")
    parser.add_argument("--invalid-utf8", type=int, default=20, help="text frames that are not UTF-8 (closed 1007)")
    parser.add_argument("--multibyte", type=int, default=20,
                        help="multi-byte frames around max-frame-bytes (most over it in bytes, under it in characters)")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="guard on the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (relay log, data)")
    parser.add_argument("--out", default=None, help="JSON output path (default bench/results/fuzz-live-<timestamp>.json)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gunrelay-fuzz-"))
    relay = RelayProcess(args, workdir)
    print(f"relay pid {relay.pid} on {relay.http} (log {relay.log_path})", flush=True)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        relay.wait_ready()
        memory_start = memory_kb(relay.pid)
        cfg = live_fuzz.FuzzConfig(
            ws_url=relay.ws,
            http_url=relay.http,
            frames=args.frames,
            conns=args.conns,
            window=args.window,
            seed=args.seed,
            timeout_s=args.timeout,
            max_frame_bytes=args.max_frame_bytes,
            oversize=args.oversize,
            close_big=args.close_big,
            huge_100mb=args.huge,
            invalid_utf8=args.invalid_utf8,
            multibyte=args.multibyte,
            admin_token=relay.token,
            max_seconds=args.max_seconds,
            progress=lambda p: print(
                f"  {p['frames']:>9,} frames  {p['elapsed_s']:7.0f} s  {p['frames'] / max(p['elapsed_s'], 1e-9):7.0f}/s  "
                f"violations {p['violations']}  stalls {p['stalls']}  relay rss {memory_kb(relay.pid).get('VmRSS')} kB",
                flush=True,
            ),
            progress_every_s=30.0,
        )
        summary = asyncio.run(live_fuzz.run_fuzz(cfg))
        alive = relay.alive()
        memory_end = memory_kb(relay.pid)
        cpu = cpu_seconds(relay.pid)
    finally:
        stop = relay.stop()
    log = relay.log_figures()
    ok = summary["ok"] and alive and stop["clean"]
    result = {
        "started_at": started_at,
        "command": " ".join([".venv/bin/python", "bench/fuzz_live.py", *sys.argv[1:]]),
        "relay_command": " ".join(relay.cmd).replace(str(workdir), "<tmp>").replace(relay.token, "<random token>"),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items()},
        "relay": {
            "pid": relay.pid,
            "alive_at_end": alive,
            "stop": stop,
            "memory_start_kb": memory_start,
            "memory_end_kb": memory_end,
            "cpu_s": cpu,
            "log": log,
        },
        "summary": summary,
        "ok": ok,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"fuzz-live-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=True) + "\n")
    print_summary(result)
    print(f"figures: {out}")
    if args.keep:
        print(f"kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
