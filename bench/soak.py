#!/usr/bin/env python3
"""Bounded soak: many connections exchanging steady traffic for minutes, ours vs the Node GUN relay.

Usage (from the repo root):
    .venv/bin/python bench/soak.py                          # 1,000 connections, 10 min per relay, both relays
    .venv/bin/python bench/soak.py --minutes 1 --conns 200  # a short check
    .venv/bin/python bench/soak.py --relay ours             # one relay (ours | node | both)

Each relay is started as bench/run.py starts it (same command, free 127.0.0.1 port, fresh temp data
dir), one after the other, never at the same time. The load is bench/load.js in `soak` mode:
--conns connections in groups of --group-size, each group sharing --souls-per-group souls; every
connection handshakes, subscribes (get) to its group's souls, then puts one field of its own every
--put-every-s seconds (open loop) and gets one of the souls every --get-every-s seconds, so each put
is pushed by the relay to the group's other members. The data set is bounded (the same souls and
fields are overwritten), so a growing RSS is not explained by a growing graph.

Every --interval-s: puts sent, acks ok, errors (`err` replies), timeouts (no ack within
--op-timeout-s), pushes received, disconnects, ack latency p50/p95/p99/max, relay RSS and CPU.
Every --sample-s: relay RSS (VmRSS of its process tree). At the end: totals, the RSS slope after
--warmup-s (least squares, MiB per minute) and the RSS growth after warm-up, a latency-over-time
table per relay, and ours/node ratios. JSON: bench/results/soak-<timestamp>.json.

Nothing waits without a bound: the set-up, every tick and the drain have timeouts, the load
processes have a hard timeout, and the relays are stopped by PID at the end, also on error.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (bench/run.py: relay specs and lifecycle, /proc helpers, histograms)
    RESULTS, CpuWindow, LoadProc, Relay, base_cfg, dir_fingerprint, fmt, loadavg, merge_hists,
    g, print_comparison, raise_open_files, ratio, relay_specs, split, stop_all, summarize,
)

MIB = 1024.0
SETUP_BUDGET_S = 300.0   # connect + handshake + seed + subscribe, per relay
TICK_TIMEOUT_S = 20.0    # a load process must answer a tick within this


def hist_summary(hs: list) -> dict:
    return summarize(merge_hists([h for h in hs if h]))


def sum_dicts(ds: list[dict]) -> dict:
    out: dict = {}
    for d in ds:
        for k, v in (d or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out


def least_squares(points: list[tuple[float, float]]) -> dict | None:
    """Slope (y per x), intercept and r^2 of a straight-line fit."""
    n = len(points)
    if n < 3:
        return None
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx <= 0:
        return None
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    syy = sum((p[1] - my) ** 2 for p in points)
    b = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 1.0
    return {"slope": b, "intercept": my - b * mx, "r2": r2, "n": n}


def memory_summary(samples: list[dict], warmup_s: float, flat_pct_per_h: float) -> dict:
    after = [s for s in samples if s["t_s"] >= warmup_s and s.get("rss_kb")]
    fit = least_squares([(s["t_s"] / 60.0, s["rss_kb"] / MIB) for s in after])
    out: dict = {"warmup_s": warmup_s, "samples_after_warmup": len(after)}
    if not after:
        return out
    first, last = after[0]["rss_kb"] / MIB, after[-1]["rss_kb"] / MIB
    mean = sum(s["rss_kb"] for s in after) / len(after) / MIB
    out.update({
        "rss_at_warmup_end_mib": round(first, 2), "rss_end_mib": round(last, 2),
        "rss_min_after_warmup_mib": round(min(s["rss_kb"] for s in after) / MIB, 2),
        "rss_max_after_warmup_mib": round(max(s["rss_kb"] for s in after) / MIB, 2),
        "growth_after_warmup_mib": round(last - first, 2),
        "window_min": round((after[-1]["t_s"] - after[0]["t_s"]) / 60.0, 2),
    })
    if fit:
        slope = fit["slope"]
        out.update({"slope_mib_per_min": round(slope, 4), "slope_r2": round(fit["r2"], 3),
                    "projected_growth_mib_per_h": round(slope * 60, 1),
                    "projected_growth_pct_per_h": round(100 * slope * 60 / mean, 1) if mean else None})
        out["flat"] = abs(slope * 60) <= flat_pct_per_h / 100.0 * mean
        if out["window_min"] < 5:
            out["window_note"] = (f"the window after warm-up is {out['window_min']} min: the slope is indicative "
                                  f"only (a 10-minute run gives 8 min)")
        out["flat_criterion"] = (f"|slope| x 60 min <= {flat_pct_per_h:g}% of the mean RSS after warm-up "
                                 f"({flat_pct_per_h / 100.0 * mean:.1f} MiB/h)")
    return out


# ----------------------------------------------------------------------------- one relay


async def soak_relay(name: str, spec: dict, a, minutes: float, tag: str) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"gunsoak-{name}-"))
    relay = Relay(name, spec, workdir)
    duration_s = minutes * 60.0
    warmup_s = a.warmup_s
    warmup_note = None
    if warmup_s >= duration_s * 0.75:  # short validation run: keep a usable window after warm-up
        warmup_s = round(duration_s / 2, 1)
        warmup_note = f"run shorter than warm-up + window: warm-up shortened to {warmup_s}s (half the run)"
    out: dict = {"name": name, "cmd": spec["cmd"](relay.port, relay.data), "workdir": str(workdir),
                 "minutes": minutes, "warmup_s": warmup_s, "warmup_note": warmup_note,
                 "intervals": [], "samples": []}
    procs: list[LoadProc] = []
    G = a.group_size
    hard_s = SETUP_BUDGET_S + duration_s + a.drain_s + 180
    try:
        try:
            out["startup_s"] = round(await relay.start(), 2)
        except Exception as e:
            out["error"] = out["start_error"] = f"{type(e).__name__}: {e}"[:3000]
            print(f"[{name}] failed to start: ...{out['start_error'][-500:]}", flush=True)
            return out
        out["pid"], out["port"] = relay.proc.pid, relay.port
        print(f"[{name}] started pid {relay.proc.pid} port {relay.port} in {out['startup_s']}s "
              f"(loadavg {loadavg()})", flush=True)
        await asyncio.sleep(1.0)
        out["rss_idle_kb"] = relay.rss()

        # load processes: whole groups per process, so a group's pushes stay within one process
        ngroups = math.ceil(a.conns / G)
        g0 = 0
        for i, ng in enumerate(split(ngroups, a.procs)):
            lo, hi = g0 * G, min((g0 + ng) * G, a.conns)
            g0 += ng
            cfg = base_cfg(relay, "soak", hard_s, proc=i, conns=hi - lo, idxBase=lo, groupSize=G,
                           soulsPerGroup=a.souls_per_group, prefix=f"soak/{tag}",
                           putEveryMs=int(a.put_every_s * 1000), getEveryMs=int(a.get_every_s * 1000),
                           opTimeoutMs=int(a.op_timeout_s * 1000), connectParallel=a.connect_parallel,
                           reconnectDelayMs=1000, drainMs=int(a.drain_s * 1000),
                           handshakeTimeoutMs=10000, goTimeoutMs=int(SETUP_BUDGET_S * 1000) + 60000)
            procs.append(await LoadProc.start(cfg, workdir))
        t_setup = time.monotonic()
        readies = await asyncio.gather(*(lp.wait_event("ready", SETUP_BUDGET_S) for lp in procs))
        out["setup"] = {
            "conns_requested": a.conns, "conns_open": sum(r.get("conns", 0) for r in readies),
            "handshakes": sum(r.get("handshakes", 0) for r in readies),
            "subscribed": sum(r.get("subscribed", 0) for r in readies),
            "seed_sent": sum(r.get("seed_sent", 0) for r in readies),
            "seed_acked": sum(r.get("seed_acked", 0) for r in readies),
            "setup_s": round(time.monotonic() - t_setup, 2),
            "counters": sum_dicts([r.get("setup_counters") for r in readies]),
        }
        print(f"[{name}] set up: " + ", ".join(
            f"{k} {v}" for k, v in out["setup"].items() if k != "counters")
            + "".join(f", {k} {v}" for k, v in out["setup"]["counters"].items() if v), flush=True)
        await asyncio.sleep(1.0)
        out["rss_after_connect_kb"] = relay.rss()
        if out["rss_after_connect_kb"] and out["rss_idle_kb"] and out["setup"]["conns_open"]:
            out["kb_per_conn_subscribed"] = round(
                (out["rss_after_connect_kb"] - out["rss_idle_kb"]) / out["setup"]["conns_open"], 2)

        # ---- run ----
        for lp in procs:
            lp.say("go")
        t0 = time.monotonic()
        la0 = loadavg()
        cpu_total = CpuWindow(relay.proc.pid, [lp.pid for lp in procs])
        cpu_iv = CpuWindow(relay.proc.pid, [lp.pid for lp in procs])
        end = t0 + duration_s
        next_sample, k_tick, tick_seq = t0, 1, 0
        next_tick = min(t0 + a.interval_s, end)
        while True:
            now = time.monotonic()
            if not relay.alive():
                out["error"] = f"relay exited with {relay.proc.returncode} at t={now - t0:.1f}s"
                out["relay_log_tail"] = relay.log_tail()
                print(f"[{name}] {out['error']}", flush=True)
                break
            if now >= next_sample:
                out["samples"].append({"t_s": round(now - t0, 2), "rss_kb": relay.rss(),
                                       "data_bytes": dir_fingerprint(relay.data)[1]})
                while next_sample <= now:
                    next_sample += a.sample_s
            if now >= next_tick:
                tick_seq += 1
                for lp in procs:
                    lp.say("tick")
                ticks = await asyncio.gather(*(lp.wait_event("tick", TICK_TIMEOUT_S) for lp in procs))
                bad = [t.get("seq") for t in ticks if t.get("seq") != tick_seq]
                if bad:
                    raise RuntimeError(f"tick out of step: want {tick_seq}, got {bad}")
                cpu = cpu_iv.finish()
                cpu_iv = CpuWindow(relay.proc.pid, [lp.pid for lp in procs])
                row = interval_row(ticks, cpu, relay.rss(), time.monotonic() - t0, a)
                out["intervals"].append(row)
                print_live(name, row)
                if next_tick >= end:
                    break
                k_tick += 1
                next_tick = min(t0 + k_tick * a.interval_s, end)
            await asyncio.sleep(max(0.05, min(next_sample, next_tick) - time.monotonic()))
        out["run_s"] = round(time.monotonic() - t0, 2)
        out["cpu_total"] = cpu_total.finish() if relay.alive() else {}  # a dead relay's ticks are gone
        out["loadavg"] = {"at_go": la0, "at_end": loadavg()}

        # ---- stop, drain, totals ----
        for lp in procs:
            lp.say("stop")
        results = await asyncio.gather(*(lp.wait_event("result", a.drain_s + 30) for lp in procs))
        out["rss_end_kb"] = relay.rss()
        out["totals"] = sum_dicts([r.get("totals") for r in results])
        out["load_counters"] = sum_dicts([r.get("counters") for r in results])
        out["unacked_at_end"] = sum(r.get("unacked_at_end") or 0 for r in results)
        out["unanswered_gets_at_end"] = sum(r.get("unanswered_gets_at_end") or 0 for r in results)
        out["open_conns_at_end"] = sum(r.get("open_conns") or 0 for r in results)
        out["aborted"] = [r.get("aborted") for r in results if r.get("aborted")]
        out["err_samples"] = sum((r.get("err_samples") or [] for r in results), [])[:10]
        out["latency"] = {"ack": hist_summary([r.get("hist_ack") for r in results]),
                          "get": hist_summary([r.get("hist_get") for r in results]),
                          "push": hist_summary([r.get("hist_push") for r in results])}
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"[:3000]
        out["trace"] = traceback.format_exc()[-3000:]
        print(f"[{name}] FAILED: {out['error'][:500]}", flush=True)
    finally:
        await stop_all(procs)
        out["load_stderr_tail"] = [lp.errfile.read_text(errors="replace")[-1000:]
                                   for lp in procs if lp.errfile.exists() and lp.errfile.stat().st_size]
        out["stop"] = relay.stop()
        if "relay_log_tail" not in out:
            out["relay_log_tail"] = relay.log_tail(3000)
        if not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    finish_relay(out, a)
    return out


def interval_row(ticks: list[dict], cpu: dict, rss_kb, t_s: float, a) -> dict:
    c = sum_dicts([t.get("counters") for t in ticks])
    ack = hist_summary([t.get("hist_ack") for t in ticks])
    get = hist_summary([t.get("hist_get") for t in ticks])
    push = hist_summary([t.get("hist_push") for t in ticks])
    loaders = (cpu.get("loaders_pct") or {}).values()
    return {
        "t_s": round(t_s, 1), "counters": c,
        "puts_sent": c.get("puts_sent", 0), "acks_ok": c.get("acks_ok", 0),
        "errors": c.get("err_acks", 0) + c.get("get_err", 0) + c.get("dam_errors", 0),
        "timeouts": c.get("timeouts", 0) + c.get("get_timeouts", 0),
        "pushes": c.get("push_fields", 0), "pushes_expected": c.get("push_expected", 0),
        "disconnects": c.get("disconnects", 0), "reconnects": c.get("reconnects", 0),
        "ack": ack, "get": get, "push": push,
        "open_conns": sum(t.get("open_conns", 0) for t in ticks),
        "subscribed_conns": sum(t.get("subscribed_conns", 0) for t in ticks),
        "pending_puts": sum(t.get("pending_puts", 0) for t in ticks),
        "rss_kb": rss_kb, "relay_cpu_pct": cpu.get("relay_pct"),
        "loader_cpu_pct": round(max(loaders), 1) if loaders else None,
        "other_cpu_pct": cpu.get("other_processes_pct"), "cpu": cpu,
    }


def print_live(name: str, r: dict):
    a = r["ack"]
    print(f"[{name}] t={r['t_s']:6.0f}s puts {r['puts_sent']:>6} acks {r['acks_ok']:>6} err {r['errors']} "
          f"tmo {r['timeouts']} push {r['pushes']:>7} disc {r['disconnects']} open {r['open_conns']}  "
          f"ack p50/p95/p99/max {fmt(a.get('p50_ms'))}/{fmt(a.get('p95_ms'))}/{fmt(a.get('p99_ms'))}/"
          f"{fmt(a.get('max_ms'))} ms  rss {fmt((r['rss_kb'] or 0) / MIB)} MiB  cpu relay "
          f"{fmt(r['relay_cpu_pct'])}% loader {fmt(r['loader_cpu_pct'])}% other {fmt(r['other_cpu_pct'])}%",
          flush=True)


def finish_relay(out: dict, a):
    """Derived figures: rates, memory slope, verdict."""
    tot = out.get("totals") or {}
    run_s = out.get("run_s") or 0
    out["memory"] = memory_summary(out.get("samples") or [], out["warmup_s"], a.flat_pct_per_h)
    if not tot:
        out["verdict"] = {"clean": False, "why": [out.get("error") or "no totals"]}
        return
    errors = tot.get("err_acks", 0) + tot.get("get_err", 0) + tot.get("dam_errors", 0)
    out["summary"] = {
        "puts_sent": tot.get("puts_sent", 0), "acks_ok": tot.get("acks_ok", 0),
        "puts_per_s": round(tot.get("puts_sent", 0) / run_s, 1) if run_s else None,
        "acks_per_s": round(tot.get("acks_ok", 0) / run_s, 1) if run_s else None,
        "gets_sent": tot.get("gets_sent", 0), "get_replies": tot.get("get_replies", 0),
        "errors": errors, "err_acks": tot.get("err_acks", 0), "get_err": tot.get("get_err", 0),
        "dam_errors": tot.get("dam_errors", 0), "ws_errors": tot.get("ws_errors", 0),
        "timeouts": tot.get("timeouts", 0), "get_timeouts": tot.get("get_timeouts", 0),
        "late_acks": tot.get("late_acks", 0), "unacked_at_end": out.get("unacked_at_end"),
        "pushes": tot.get("push_fields", 0), "pushes_expected": tot.get("push_expected", 0),
        "push_delivery_pct": round(100.0 * tot.get("push_fields", 0) / tot["push_expected"], 2)
        if tot.get("push_expected") else None,
        "push_messages": tot.get("pushes_in", 0), "push_dup": tot.get("push_dup", 0),
        "push_echo": tot.get("push_echo", 0), "forwarded_gets_in": tot.get("forwarded_gets_in", 0),
        "disconnects": tot.get("disconnects", 0), "reconnects": tot.get("reconnects", 0),
        "open_conns_at_end": out.get("open_conns_at_end"),
        "relay_cpu_pct_avg": (out.get("cpu_total") or {}).get("relay_pct"),
        "loader_cpu_pct_avg": max((out.get("cpu_total") or {}).get("loaders_pct", {}).values(), default=None),
        "other_cpu_pct_avg": (out.get("cpu_total") or {}).get("other_processes_pct"),
    }
    s = out["summary"]
    why = []
    if out.get("error"):
        why.append(out["error"])
    for k in ("errors", "ws_errors", "timeouts", "get_timeouts", "unacked_at_end", "disconnects"):
        if s.get(k):
            why.append(f"{k}={s[k]}")
    if out.get("setup", {}).get("conns_open") != a.conns:
        why.append(f"only {out.get('setup', {}).get('conns_open')} of {a.conns} connections opened")
    if out.get("setup", {}).get("subscribed") != a.conns:
        why.append(f"only {out.get('setup', {}).get('subscribed')} of {a.conns} connections subscribed")
    if s.get("open_conns_at_end") != a.conns:
        why.append(f"{s.get('open_conns_at_end')} of {a.conns} connections open at the end")
    out["verdict"] = {"clean": not why, "why": why, "memory_flat": out["memory"].get("flat")}
    notes = []
    hot = [r["t_s"] for r in out.get("intervals", []) if (r.get("loader_cpu_pct") or 0) >= 90]
    if hot:
        notes.append(f"load process at >=90% of a core in {len(hot)} interval(s): the load generator may be "
                     f"late (try --procs 2)")
    other = s.get("other_cpu_pct_avg")
    if other is not None and other > 20:
        notes.append(f"other processes used {other}% of a core on average: figures skewed, rerun when quiet")
    out["notes"] = notes


# ----------------------------------------------------------------------------- report

METRICS = [
    # (label, getter path, direction)
    ("connections open (setup)", ("setup", "conns_open"), None),
    ("subscribed (setup)", ("setup", "subscribed"), None),
    ("setup s", ("setup", "setup_s"), "lower"),
    ("puts sent/s", ("summary", "puts_per_s"), None),
    ("acks ok/s", ("summary", "acks_per_s"), "higher"),
    ("puts sent", ("summary", "puts_sent"), None),
    ("acks ok", ("summary", "acks_ok"), None),
    ("errors (err replies)", ("summary", "errors"), "lower"),
    ("timeouts (ack > op timeout)", ("summary", "timeouts"), "lower"),
    ("get timeouts", ("summary", "get_timeouts"), "lower"),
    ("unacked at end", ("summary", "unacked_at_end"), "lower"),
    ("disconnects", ("summary", "disconnects"), "lower"),
    ("open at end", ("summary", "open_conns_at_end"), None),
    ("ack p50 ms", ("latency", "ack", "p50_ms"), "lower"),
    ("ack p95 ms", ("latency", "ack", "p95_ms"), "lower"),
    ("ack p99 ms", ("latency", "ack", "p99_ms"), "lower"),
    ("ack max ms", ("latency", "ack", "max_ms"), "lower"),
    ("get p50 ms", ("latency", "get", "p50_ms"), "lower"),
    ("get p99 ms", ("latency", "get", "p99_ms"), "lower"),
    ("pushes received", ("summary", "pushes"), None),
    ("push delivery %", ("summary", "push_delivery_pct"), "higher"),
    ("push p50 ms", ("latency", "push", "p50_ms"), "lower"),
    ("push p99 ms", ("latency", "push", "p99_ms"), "lower"),
    ("fwd gets received", ("summary", "forwarded_gets_in"), None),
    ("RSS idle MiB", ("rss_idle_mib",), None),
    ("RSS after connect MiB", ("rss_after_connect_mib",), "lower"),
    ("KB per subscribed conn", ("kb_per_conn_subscribed",), "lower"),
    ("RSS at warm-up end MiB", ("memory", "rss_at_warmup_end_mib"), "lower"),
    ("RSS end MiB", ("memory", "rss_end_mib"), "lower"),
    ("RSS growth after warm-up MiB", ("memory", "growth_after_warmup_mib"), "lower"),
    ("RSS slope MiB/min", ("memory", "slope_mib_per_min"), "lower"),
    ("RSS slope r^2", ("memory", "slope_r2"), None),
    ("relay CPU % (avg)", ("summary", "relay_cpu_pct_avg"), "lower"),
    ("loader CPU % (avg)", ("summary", "loader_cpu_pct_avg"), None),
    ("other CPU % (avg)", ("summary", "other_cpu_pct_avg"), None),
]


def view(r: dict) -> dict:
    v = dict(r)
    for k in ("rss_idle_kb", "rss_after_connect_kb"):
        if r.get(k):
            v[k.replace("_kb", "_mib")] = round(r[k] / MIB, 2)
    return v


def build_ratios(relays: dict) -> dict:
    if "ours" not in relays or "node" not in relays:
        return {}
    o, n = view(relays["ours"]), view(relays["node"])
    out = {}
    for label, path, direction in METRICS:
        if direction:
            out[label] = {"ours": g(o, *path), "node": g(n, *path), "ours_over_node": ratio(g(o, *path), g(n, *path)),
                          "better": f"{direction} is better"}
    return out


def print_intervals(name: str, r: dict):
    rows = r.get("intervals") or []
    print(f"\n{name}: per interval (latency over time; ack/push in ms; RSS at the interval's end)")
    hdr = (f"{'t s':>6} {'puts':>7} {'acks':>7} {'err':>4} {'tmo':>4} {'pushes':>8} {'disc':>4} {'open':>5} "
           f"{'ack p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'get p50':>8} {'push p50':>8} {'p99':>8} "
           f"{'RSS MiB':>8} {'relay%':>6} {'load%':>6} {'other%':>6}")
    print(hdr)
    print("-" * len(hdr))
    for x in rows:
        print(f"{x['t_s']:>6.0f} {x['puts_sent']:>7} {x['acks_ok']:>7} {x['errors']:>4} {x['timeouts']:>4} "
              f"{x['pushes']:>8} {x['disconnects']:>4} {x['open_conns']:>5} "
              f"{fmt(x['ack'].get('p50_ms')):>8} {fmt(x['ack'].get('p95_ms')):>8} {fmt(x['ack'].get('p99_ms')):>8} "
              f"{fmt(x['ack'].get('max_ms')):>8} {fmt(x['get'].get('p50_ms')):>8} "
              f"{fmt(x['push'].get('p50_ms')):>8} {fmt(x['push'].get('p99_ms')):>8} "
              f"{fmt((x['rss_kb'] or 0) / MIB):>8} {fmt(x['relay_cpu_pct']):>6} {fmt(x['loader_cpu_pct']):>6} "
              f"{fmt(x['other_cpu_pct']):>6}")


def print_report(doc: dict):
    relays = doc["relays"]
    names = [n for n in ("ours", "node") if n in relays]
    m = doc["meta"]
    print()
    print("=" * 100)
    print(f"gunrelay soak  {m['timestamp']}  conns={m['conns']}  minutes={m['minutes']}  cpus={m['cpus']}  "
          f"loadavg at start={m['loadavg_start']}")
    print(f"traffic: groups of {m['params']['group_size']} sharing {m['params']['souls_per_group']} souls; "
          f"1 put/{m['params']['put_every_s']}s and 1 get/{m['params']['get_every_s']}s per connection "
          f"(~{m['expected_puts_per_s']:.0f} puts/s, ~{m['expected_pushes_per_s']:.0f} pushes/s)")
    print("=" * 100)
    for n in names:
        print_intervals(n, relays[n])
    print()
    print_comparison(names, {n: view(relays[n]) for n in names}, METRICS)
    print()
    for n in names:
        r = relays[n]
        mem = r.get("memory") or {}
        v = r.get("verdict") or {}
        print(f"{n}: traffic {'CLEAN' if v.get('clean') else 'NOT CLEAN: ' + '; '.join(map(str, v.get('why', [])))}")
        if mem.get("slope_mib_per_min") is not None:
            print(f"{n}: memory after {mem['warmup_s']:g}s warm-up ({mem['samples_after_warmup']} samples over "
                  f"{mem['window_min']} min): slope {mem['slope_mib_per_min']:+.3f} MiB/min (r^2 {mem['slope_r2']}), "
                  f"growth {mem['growth_after_warmup_mib']:+.2f} MiB, projected {mem['projected_growth_mib_per_h']:+.1f}"
                  f" MiB/h ({mem['projected_growth_pct_per_h']:+.1f}%/h) -> "
                  f"{'FLAT' if mem.get('flat') else 'GROWING' if (mem['slope_mib_per_min'] > 0) else 'SHRINKING'}"
                  f" [{mem['flat_criterion']}]")
            if mem.get("window_note"):
                print(f"{n}: NOTE: {mem['window_note']}")
        else:
            print(f"{n}: memory: not enough samples after warm-up")
        if r.get("warmup_note"):
            print(f"{n}: NOTE: {r['warmup_note']}")
        for note in r.get("notes") or []:
            print(f"{n}: NOTE: {note}")
        if r.get("err_samples"):
            print(f"{n}: error samples: {r['err_samples'][:3]}")
        if r.get("error"):
            print(f"{n}: ERROR: {r['error'][:500]}")
    print()


# ----------------------------------------------------------------------------- main


async def amain(a) -> int:
    # SIGTERM cancels the run like Ctrl-C does, so the finally blocks stop the relay and the loaders
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    specs = relay_specs()
    names = ["ours", "node"] if a.relay == "both" else [a.relay]
    node_minutes = a.node_minutes if a.node_minutes is not None else a.minutes
    minutes = {"ours": a.minutes, "node": node_minutes}
    ts = time.strftime("%Y%m%dT%H%M%S")
    tag = f"{int(time.time())}"
    est = sum(minutes[n] + 0.25 for n in names)  # start, connect, drain and stop: ~10-15 s per relay
    params = {k: getattr(a, k) for k in ("conns", "group_size", "souls_per_group", "put_every_s", "get_every_s",
                                         "op_timeout_s", "interval_s", "sample_s", "warmup_s", "drain_s",
                                         "procs", "connect_parallel", "flat_pct_per_h")}
    doc = {
        "meta": {
            "timestamp": ts, "relays": names, "minutes": minutes, "conns": a.conns, "params": params,
            "expected_puts_per_s": a.conns / a.put_every_s,
            "expected_pushes_per_s": a.conns / a.put_every_s * (min(a.group_size, a.conns) - 1),
            "expected_gets_per_s": a.conns / a.get_every_s if a.get_every_s else 0,
            "cpus": os.cpu_count(), "loadavg_start": loadavg(), "python": sys.version.split()[0],
            "node": subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip(),
            "platform": platform.platform(), "ulimit_n": resource.getrlimit(resource.RLIMIT_NOFILE),
            "notes": [
                "relays run one at a time on this machine, with the load generator (bench/load.js, mode soak)",
                "ratios are ours/node; see 'better' for the direction",
                "RSS = VmRSS of the relay's process tree from /proc; slope = least squares over the samples "
                "after warm-up",
            ],
        },
        "relays": {},
    }
    print(f"soak: {', '.join(f'{n} {minutes[n]:g} min' for n in names)}, {a.conns} connections; expected wall "
          f"time about {est:.1f} min", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{ts}.json"
    for n in names:
        budget = SETUP_BUDGET_S + minutes[n] * 60 + a.drain_s + 240
        try:
            doc["relays"][n] = await asyncio.wait_for(soak_relay(n, specs[n], a, minutes[n], f"{n}{tag}"), budget)
        except asyncio.TimeoutError:  # soak_relay's finally has stopped the relay and the loaders
            doc["relays"][n] = {"name": n, "error": f"over the time budget of {budget:.0f}s"}
        path.write_text(json.dumps(doc, indent=2, default=str))  # partial results survive a later failure
        if n != names[-1]:
            await asyncio.sleep(3.0)
    doc["meta"]["loadavg_end"] = loadavg()
    doc["ratios"] = build_ratios(doc["relays"])
    path.write_text(json.dumps(doc, indent=2, default=str))
    print_report(doc)
    print(f"JSON: {path}")
    return 0 if all((r.get("verdict") or {}).get("clean") for r in doc["relays"].values()) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relay", choices=["ours", "node", "both"], default="both")
    ap.add_argument("--minutes", type=float, default=10.0, help="traffic time per relay (default 10)")
    ap.add_argument("--node-minutes", type=float, default=None,
                    help="traffic time for the node relay (default: same as --minutes, so both slopes are "
                         "fitted over the same window)")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--group-size", type=int, default=10, help="connections sharing the same souls")
    ap.add_argument("--souls-per-group", type=int, default=2)
    ap.add_argument("--put-every-s", type=float, default=2.0, help="each connection puts once per this")
    ap.add_argument("--get-every-s", type=float, default=10.0, help="each connection gets once per this (0: none)")
    ap.add_argument("--op-timeout-s", type=float, default=10.0, help="no ack/reply within this is a timeout")
    ap.add_argument("--interval-s", type=float, default=30.0, help="reporting interval")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling period")
    ap.add_argument("--warmup-s", type=float, default=120.0,
                    help="RSS slope is fitted after this (halved run time if the run is too short)")
    ap.add_argument("--drain-s", type=float, default=15.0, help="wait for outstanding acks at the end")
    ap.add_argument("--procs", type=int, default=1, help="load processes (whole groups per process)")
    ap.add_argument("--connect-parallel", type=int, default=50)
    ap.add_argument("--flat-pct-per-h", type=float, default=10.0,
                    help="memory counts as flat when the slope projects to at most this %% of RSS per hour")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (relay log, data, load stderr)")
    a = ap.parse_args()
    if a.conns < 1 or a.group_size < 2 or a.souls_per_group < 1 or a.put_every_s <= 0 or a.interval_s <= 0:
        ap.error("need --conns >= 1, --group-size >= 2, --souls-per-group >= 1, positive periods")
    raise_open_files(max(8192, 2 * a.conns + 1024))
    try:
        sys.exit(asyncio.run(amain(a)))
    except KeyboardInterrupt:
        sys.exit(130)
    except asyncio.CancelledError:  # SIGTERM
        sys.exit(143)


if __name__ == "__main__":
    main()
