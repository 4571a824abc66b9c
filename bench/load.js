'use strict';
// Raw-wire GUN load generator for bench/run.py. One process, many WebSocket connections.
//
// Usage: node bench/load.js '<json config>'
// Protocol with the parent (bench/run.py):
//   stdout: one JSON object per line: {"event":"ready",...} once connections are set up,
//           {"event":"result",...} at the end (then the process exits).
//   stdin:  "go\n" starts the timed part (put/get/fanout); "close\n" ends an idle run.
//           soak also takes "tick\n" (answered with {"event":"tick",...}) and "stop\n".
// Every phase is bounded: per-op timeouts, a drain timeout and a hard process timeout.
//
// Modes (cfg.mode):
//   put     cfg.conns connections x cfg.inflight puts in flight, warm-up then measured window.
//   preload put cfg.count souls `${cfg.prefix}/${i}` (fields a:'v'+i, b:i), wait for every ack.
//   get     random whole-node gets over the preloaded souls, cfg.conns x cfg.inflight.
//   fanout  cfg.subs subscribers get one soul, one writer puts cfg.updates updates every cfg.interval ms.
//   idle    open cfg.conns connections, complete the dam handshake, stay idle until "close".
//   soak    (bench/soak.py) cfg.conns connections in groups sharing souls: subscribe, then steady
//           puts and gets for as long as the parent wants; "tick" on stdin reports an interval
//           (counters + latency histograms), "stop" drains and ends. See modeSoak below.

const WebSocket = require('ws');
const { performance } = require('perf_hooks');

const cfg = JSON.parse(process.argv[2] || '{}');
const URL_ = cfg.url;
const now = () => performance.now();
const T0 = Date.now();

// ---------- ids: random, unique, fixed length 12 (never "<other id><digit>") ----------
const ALPHA = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXZabcdefghijklmnopqrstuvwxyz';
function rnd(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHA[(Math.random() * ALPHA.length) | 0];
  return s;
}
// 12 random chars from 61 symbols (~2.7e21 values): a collision among the ~1e6 ids of a run has
// probability ~2e-10. All ids have the same length, so none is another id plus a digit.
function rid() { return rnd(12); }

// ---------- latency histogram (1% log buckets over microseconds) ----------
const LOGB = Math.log(1.01);
class Hist {
  constructor() { this.b = new Map(); this.n = 0; this.sum = 0; this.min = Infinity; this.max = 0; }
  add(ms) {
    const us = Math.max(1, ms * 1000);
    const k = Math.floor(Math.log(us) / LOGB);
    this.b.set(k, (this.b.get(k) || 0) + 1);
    this.n++; this.sum += ms; if (ms < this.min) this.min = ms; if (ms > this.max) this.max = ms;
  }
  toJSON() {
    const b = {};
    for (const [k, v] of this.b) b[k] = v;
    return { buckets: b, n: this.n, sum_ms: this.sum, min_ms: this.n ? this.min : null, max_ms: this.max };
  }
}

// ---------- output / control ----------
function emit(o) { process.stdout.write(JSON.stringify(o) + '\n'); }
let stdinBuf = '';
const stdinWaiters = {};
// A mode that takes repeated commands (soak: "tick", "stop") sets this; it returns true when it
// consumed the line. Unset (null) for every other mode, so their stdin handling is unchanged.
let lineHook = null;
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  stdinBuf += d;
  let i;
  while ((i = stdinBuf.indexOf('\n')) >= 0) {
    const line = stdinBuf.slice(0, i).trim();
    stdinBuf = stdinBuf.slice(i + 1);
    if (lineHook && lineHook(line)) continue;
    const w = stdinWaiters[line];
    if (w) { delete stdinWaiters[line]; w(); }
    else stdinWaiters['_seen_' + line] = true;
  }
});
let stdinEnded = false;
process.stdin.on('end', () => { // parent went away: whoever waits for a command gets `false`
  stdinEnded = true;
  counters.stdin_closed = 1;
  for (const k of Object.keys(stdinWaiters)) { const w = stdinWaiters[k]; delete stdinWaiters[k]; if (typeof w === 'function') w(false); }
});
function waitStdin(word, timeoutMs) {
  return new Promise((resolve) => {
    if (stdinEnded && !stdinWaiters['_seen_' + word]) return resolve(false);
    if (stdinWaiters['_seen_' + word]) { delete stdinWaiters['_seen_' + word]; return resolve(true); }
    const t = setTimeout(() => { delete stdinWaiters[word]; resolve(false); }, timeoutMs);
    stdinWaiters[word] = (v) => { clearTimeout(t); resolve(v !== false); };
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const counters = {
  connect_fail: 0, closed_unexpected: 0, ws_errors: 0, handshake_missing: 0,
  bad_json: 0, dam_errors: 0, frames_in: 0, msgs_in: 0, batch_frames_in: 0,
  forwarded_gets_in: 0, pushes_in: 0, unknown_replies: 0, msgs_out: 0,
};
const damErrorSamples = [];
let finished = false;
let allConns = [];
let extraResult = {};

function finish(result, code) {
  if (finished) return;
  finished = true;
  const out = Object.assign({ event: 'result', mode: cfg.mode, proc: cfg.proc || 0 }, result, {
    counters, dam_error_samples: damErrorSamples.slice(0, 5), wall_s: (Date.now() - T0) / 1000,
  }, extraResult);
  for (const c of allConns) { try { c.ws.terminate(); } catch (e) {} }
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code || 0));
  setTimeout(() => process.exit(code || 0), 2000).unref();
}
setTimeout(() => finish({ aborted: 'hard timeout' }, 3), cfg.hardTimeoutMs || 120000);

// ---------- connections ----------
let closing = false;
function openConn(idx, onMsg) {
  return new Promise((resolve) => {
    const conn = { idx, pid: rid().slice(0, 9), handshake: false, open: false, ws: null, hsWaiters: [] };
    let settled = false;
    const done = (ok) => { if (!settled) { settled = true; clearTimeout(t); resolve(ok ? conn : null); } };
    const t = setTimeout(() => { counters.connect_fail++; try { ws.terminate(); } catch (e) {} done(false); },
      cfg.connectTimeoutMs || 10000);
    const ws = new WebSocket(URL_, { perMessageDeflate: false, handshakeTimeout: cfg.connectTimeoutMs || 10000 });
    conn.ws = ws;
    ws.on('open', () => { conn.open = true; allConns.push(conn); done(true); });
    ws.on('error', () => { counters.ws_errors++; if (!conn.open) { counters.connect_fail++; done(false); } });
    ws.on('close', () => { if (conn.open && !closing) counters.closed_unexpected++; conn.open = false; });
    const handle = (m) => {
      if (!m || typeof m !== 'object') return;
      counters.msgs_in++;
      if (m.dam !== undefined) {
        if (m.dam === '?' && m['@'] === undefined) {
          send(conn, JSON.stringify({ '#': rid(), dam: '?', pid: conn.pid, '@': m['#'] }));
          conn.handshake = true;
          for (const w of conn.hsWaiters) w(true);
          conn.hsWaiters = [];
        } else if (m.dam === '!') {
          counters.dam_errors++;
          if (damErrorSamples.length < 5) damErrorSamples.push(m.err);
        }
        return;
      }
      onMsg(conn, m);
    };
    ws.on('message', (data) => {
      counters.frames_in++;
      let m;
      try { m = JSON.parse(data); } catch (e) { counters.bad_json++; return; }
      if (Array.isArray(m)) { counters.batch_frames_in++; for (const x of m) handle(x); }
      else handle(m);
    });
  });
}
function waitHandshake(conn, ms) {
  if (conn.handshake) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    conn.hsWaiters.push((v) => { clearTimeout(t); resolve(v); });
  });
}
function send(conn, s) {
  if (!conn.open) return false;
  try { conn.ws.send(s); counters.msgs_out++; return true; } catch (e) { counters.ws_errors++; return false; }
}
// Open n connections, at most `par` connecting at once, each then waiting for the relay's dam '?'.
// (The handshake waits run concurrently, so a relay that never sends '?' costs one timeout, not n.)
async function openMany(n, onMsg, par) {
  const conns = new Array(n).fill(null);
  const hs = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      const c = await openConn(i, onMsg);
      if (c) {
        conns[i] = c;
        hs.push(waitHandshake(c, cfg.handshakeTimeoutMs || 3000).then((ok) => { if (!ok) counters.handshake_missing++; }));
      }
    }
  }
  const ws = [];
  for (let k = 0; k < Math.min(par || 50, n); k++) ws.push(worker());
  await Promise.all(ws);
  await Promise.all(hs);
  return conns;
}
function classifyOther(m) {
  if (m.get) counters.forwarded_gets_in++;
  else if (m.put) counters.pushes_in++;
}

function putFrame(id, soul, fields, state) {
  // fields: object of key -> primitive value; every key gets `state`
  const st = {};
  for (const k in fields) st[k] = state;
  const node = Object.assign({ _: { '#': soul, '>': st } }, fields);
  return JSON.stringify({ '#': id, put: { [soul]: node } });
}

// ---------- mode: put (closed loop, cfg.inflight per connection) ----------
async function modePut() {
  const pending = new Map(); // id -> {t, conn}
  const timedOut = new Set();
  const hist = new Hist();
  const st = { sent: 0, sent_measured: 0, acks_total: 0, acks_measured: 0, err_acks: 0, err_acks_measured: 0,
    timeouts: 0, late_acks: 0, unacked_at_end: 0 };
  const errSamples = [];
  let phase = 'setup', tWarmEnd = 0, tEnd = 0;
  const seq = new Map();
  const prefix = cfg.prefix;
  let lastState = 0;
  function sendPut(conn) {
    const n = (seq.get(conn.idx) || 0) + 1; seq.set(conn.idx, n);
    const soul = `${prefix}/${conn.idx}/${n}`;
    const id = rid();
    let s = Date.now(); if (s <= lastState) s = lastState + 0.001; lastState = s;
    const t = now();
    if (!send(conn, putFrame(id, soul, { a: 'v' + n, b: n }, s))) return;
    pending.set(id, { t, conn });
    st.sent++;
    if (phase === 'measure') st.sent_measured++;
  }
  const onMsg = (conn, m) => {
    const at = m['@'];
    if (at === undefined) return classifyOther(m);
    const p = pending.get(at);
    if (!p) { if (timedOut.has(at)) st.late_acks++; else counters.unknown_replies++; return; }
    pending.delete(at);
    const t = now();
    st.acks_total++;
    const inWin = t >= tWarmEnd && t <= tEnd;
    if (m.err !== undefined) {
      st.err_acks++; if (inWin) st.err_acks_measured++;
      if (errSamples.length < 5) errSamples.push(String(m.err));
    } else if (inWin) { st.acks_measured++; hist.add(t - p.t); }
    if (phase === 'warmup' || phase === 'measure') sendPut(p.conn);
  };
  const conns = (await openMany(cfg.conns, onMsg, cfg.connectParallel || 50)).filter(Boolean);
  emit({ event: 'ready', conns: conns.length });
  if (!(await waitStdin('go', cfg.goTimeoutMs || 60000))) return finish({ aborted: 'no go' }, 5);
  const tStart = now();
  tWarmEnd = tStart + cfg.warmupMs; tEnd = tWarmEnd + cfg.durationMs;
  phase = 'warmup';
  const tick = setInterval(() => {
    const t = now();
    if (phase === 'warmup' && t >= tWarmEnd) phase = 'measure';
    if (phase === 'measure' && t >= tEnd) phase = 'drain';
    for (const [id, p] of pending) {
      if (t - p.t > cfg.opTimeoutMs) {
        pending.delete(id); timedOut.add(id); st.timeouts++;
        if (phase === 'warmup' || phase === 'measure') sendPut(p.conn);
      }
    }
  }, 50);
  for (const c of conns) for (let k = 0; k < cfg.inflight; k++) sendPut(c);
  await sleep(cfg.warmupMs + cfg.durationMs);
  phase = 'drain';
  const drainEnd = now() + cfg.drainMs;
  while (pending.size && now() < drainEnd) await sleep(20);
  clearInterval(tick);
  st.unacked_at_end = pending.size;
  closing = true;
  finish({ stats: st, hist: hist.toJSON(), err_samples: errSamples, conns: conns.length,
    measured_s: cfg.durationMs / 1000 });
}

// ---------- mode: preload (put cfg.count souls, wait for all acks) ----------
async function modePreload() {
  const pending = new Map();
  const st = { sent: 0, acked: 0, err_acks: 0, timeouts: 0, retried: 0, late_acks: 0 };
  const failed = [];
  let next = 0;
  const queue = []; // retry indices
  const timedOut = new Set();
  const retriedIdx = new Set();
  function sendOne(conn) {
    let i;
    if (queue.length) i = queue.shift(); else if (next < cfg.count) i = next++; else return;
    const soul = `${cfg.prefix}/${i}`;
    const id = rid();
    if (!send(conn, putFrame(id, soul, { a: 'v' + i, b: i }, Date.now()))) { failed.push(i); return; }
    pending.set(id, { t: now(), conn, i });
    st.sent++;
  }
  const onMsg = (conn, m) => {
    const at = m['@'];
    if (at === undefined) return classifyOther(m);
    const p = pending.get(at);
    if (!p) { if (timedOut.has(at)) st.late_acks++; else counters.unknown_replies++; return; }
    pending.delete(at);
    if (m.err !== undefined) { st.err_acks++; failed.push(p.i); } else st.acked++;
    sendOne(p.conn);
  };
  const conns = (await openMany(cfg.conns, onMsg, 20)).filter(Boolean);
  if (!conns.length) return finish({ stats: st, error: 'no connections' }, 6);
  emit({ event: 'ready', conns: conns.length });
  const t0 = now();
  const tick = setInterval(() => {
    const t = now();
    for (const [id, p] of pending) {
      if (t - p.t > cfg.opTimeoutMs) {
        pending.delete(id); timedOut.add(id); st.timeouts++;
        if (!retriedIdx.has(p.i)) { retriedIdx.add(p.i); st.retried++; queue.push(p.i); } else failed.push(p.i);
        sendOne(p.conn);
      }
    }
  }, 100);
  for (const c of conns) for (let k = 0; k < cfg.inflight; k++) sendOne(c);
  const end = t0 + cfg.maxMs;
  while ((pending.size || queue.length || next < cfg.count) && now() < end) {
    // keep the pipeline full if connections died
    if (pending.size === 0) for (const c of conns) if (c.open) sendOne(c);
    await sleep(20);
  }
  clearInterval(tick);
  closing = true;
  finish({ stats: st, count: cfg.count, unacked: pending.size + queue.length + (cfg.count - next),
    failed: failed.length, elapsed_s: (now() - t0) / 1000, conns: conns.length });
}

// ---------- mode: get (closed loop random whole-node gets) ----------
async function modeGet() {
  const pending = new Map();
  const done = new Map(); // id -> 'hit'|'miss' for late/extra replies (bounded by op count)
  const hist = new Hist();
  const st = { sent: 0, replies_measured: 0, hits: 0, misses: 0, partial: 0, hits_measured: 0,
    misses_measured: 0, partial_measured: 0, timeouts: 0, extra_replies: 0, data_after_miss: 0,
    unanswered_at_end: 0, err_replies: 0 };
  let phase = 'setup', tWarmEnd = 0, tEnd = 0;
  const missSamples = [];
  function sendGet(conn) {
    const i = (Math.random() * cfg.count) | 0;
    const soul = `${cfg.prefix}/${i}`;
    const id = rid();
    const t = now();
    if (!send(conn, JSON.stringify({ '#': id, get: { '#': soul } }))) return;
    pending.set(id, { t, conn, i, soul });
    st.sent++;
  }
  const onMsg = (conn, m) => {
    const at = m['@'];
    if (at === undefined) return classifyOther(m);
    const p = pending.get(at);
    if (!p) {
      const d = done.get(at);
      if (d !== undefined) { st.extra_replies++; if (d === 'miss' && m.put) st.data_after_miss++; }
      else counters.unknown_replies++;
      return;
    }
    pending.delete(at);
    const t = now();
    const inWin = t >= tWarmEnd && t <= tEnd;
    let kind;
    if (m.err !== undefined) { st.err_replies++; kind = 'miss'; }
    else if (!m.put) kind = 'miss';
    else {
      const node = m.put[p.soul];
      kind = (node && node.a === 'v' + p.i && node.b === p.i) ? 'hit' : 'partial';
    }
    if (kind === 'hit') st.hits++; else if (kind === 'miss') st.misses++; else st.partial++;
    if (kind !== 'hit' && missSamples.length < 5) missSamples.push({ soul: p.soul, reply: JSON.stringify(m).slice(0, 300) });
    if (done.size < 2000000) done.set(at, kind);
    if (inWin) {
      st.replies_measured++;
      if (kind === 'hit') st.hits_measured++; else if (kind === 'miss') st.misses_measured++; else st.partial_measured++;
      hist.add(t - p.t);
    }
    if (phase === 'warmup' || phase === 'measure') sendGet(p.conn);
  };
  const conns = (await openMany(cfg.conns, onMsg, cfg.connectParallel || 50)).filter(Boolean);
  emit({ event: 'ready', conns: conns.length });
  if (!(await waitStdin('go', cfg.goTimeoutMs || 60000))) return finish({ aborted: 'no go' }, 5);
  tWarmEnd = now() + cfg.warmupMs; tEnd = tWarmEnd + cfg.durationMs;
  phase = 'warmup';
  const tick = setInterval(() => {
    const t = now();
    if (phase === 'warmup' && t >= tWarmEnd) phase = 'measure';
    if (phase === 'measure' && t >= tEnd) phase = 'drain';
    for (const [id, p] of pending) {
      if (t - p.t > cfg.opTimeoutMs) {
        pending.delete(id); st.timeouts++; done.set(id, 'timeout');
        if (phase === 'warmup' || phase === 'measure') sendGet(p.conn);
      }
    }
  }, 50);
  for (const c of conns) for (let k = 0; k < cfg.inflight; k++) sendGet(c);
  await sleep(cfg.warmupMs + cfg.durationMs);
  phase = 'drain';
  const drainEnd = now() + cfg.drainMs;
  while (pending.size && now() < drainEnd) await sleep(20);
  // let trailing duplicate replies (memory + storage) arrive so they are counted
  await sleep(Math.min(300, cfg.drainMs));
  clearInterval(tick);
  st.unanswered_at_end = pending.size;
  closing = true;
  finish({ stats: st, hist: hist.toJSON(), miss_samples: missSamples, conns: conns.length,
    measured_s: cfg.durationMs / 1000 });
}

// ---------- mode: fanout ----------
async function modeFanout() {
  const soul = cfg.soul;
  const U = cfg.updates, S = cfg.subs;
  const sendT = new Float64Array(U).fill(NaN);
  const recv = []; for (let i = 0; i < U; i++) recv.push(new Float64Array(S).fill(NaN));
  const st = { subs_connected: 0, subs_get_replied: 0, subs_get_with_data: 0, initial_put_acked: false,
    updates_sent: 0, dup_deliveries: 0, pushes_other: 0, writer_acks: 0, writer_err_acks: 0,
    writer_pushes: 0 };
  const writerAckHist = new Hist();
  const deliveryHist = new Hist();
  const getWait = new Map();
  const re = /^u(\d+)$/;
  const onSub = (conn, m) => {
    const at = m['@'];
    if (at !== undefined) {
      const w = getWait.get(at);
      if (w) { getWait.delete(at); w(m); } else counters.unknown_replies++;
      return;
    }
    if (m.get) { counters.forwarded_gets_in++; return; }
    if (!m.put) return;
    const node = m.put[soul];
    if (!node || typeof node.v !== 'string') { st.pushes_other++; return; }
    const mm = re.exec(node.v);
    if (!mm) { st.pushes_other++; return; }
    const i = +mm[1];
    if (i >= U || isNaN(sendT[i])) { st.pushes_other++; return; }
    const t = now();
    const row = recv[i];
    if (!isNaN(row[conn.idx])) { st.dup_deliveries++; return; }
    row[conn.idx] = t;
    deliveryHist.add(t - sendT[i]);
  };
  const writerPending = new Map();
  const onWriter = (conn, m) => {
    const at = m['@'];
    if (at === undefined) { if (m.put) st.writer_pushes++; else classifyOther(m); return; }
    const p = writerPending.get(at);
    if (!p) { counters.unknown_replies++; return; }
    writerPending.delete(at);
    if (m.err !== undefined) st.writer_err_acks++; else { st.writer_acks++; writerAckHist.add(now() - p.t); }
    if (p.resolve) p.resolve(m);
  };
  const [writer] = await openMany(1, onWriter, 1);
  if (!writer) return finish({ stats: st, error: 'writer could not connect' }, 6);
  let lastState = 0;
  const nextState = () => { let s = Date.now(); if (s <= lastState) s = lastState + 1; lastState = s; return s; };
  // initial value so the soul exists before anyone subscribes
  await new Promise((resolve) => {
    const id = rid();
    const t = setTimeout(() => { writerPending.delete(id); resolve(); }, cfg.opTimeoutMs);
    writerPending.set(id, { t: now(), resolve: () => { clearTimeout(t); st.initial_put_acked = true; resolve(); } });
    send(writer, putFrame(id, soul, { v: 'init', n: -1 }, nextState()));
  });
  const subs = await openMany(S, onSub, cfg.connectParallel || 50);
  // each subscriber: get the soul, wait for its reply
  await Promise.all(subs.map((c) => {
    if (!c) return null;
    st.subs_connected++;
    return new Promise((resolve) => {
      const id = rid();
      const t = setTimeout(() => { getWait.delete(id); resolve(); }, cfg.opTimeoutMs);
      getWait.set(id, (m) => {
        clearTimeout(t); st.subs_get_replied++;
        if (m.put && m.put[soul]) st.subs_get_with_data++;
        resolve();
      });
      send(c, JSON.stringify({ '#': id, get: { '#': soul } }));
    });
  }));
  emit({ event: 'ready', conns: st.subs_connected + 1 });
  if (!(await waitStdin('go', cfg.goTimeoutMs || 60000))) return finish({ aborted: 'no go' }, 5);
  await sleep(cfg.settleMs || 500);
  const t0 = now();
  for (let i = 0; i < U; i++) {
    const target = t0 + i * cfg.interval;
    const d = target - now();
    if (d > 0) await sleep(d);
    const id = rid();
    const t = now();
    sendT[i] = t;
    writerPending.set(id, { t });
    send(writer, putFrame(id, soul, { v: 'u' + i, n: i }, nextState()));
    st.updates_sent++;
  }
  // wait for outstanding deliveries, bounded
  const end = now() + cfg.drainMs;
  const complete = () => { for (let i = 0; i < U; i++) { const r = recv[i]; for (let k = 0; k < S; k++) if (subs[k] && isNaN(r[k])) return false; } return true; };
  while (now() < end && !complete()) await sleep(50);
  // strict: update i counts only when every subscriber got a push carrying exactly u<i>.
  // effective: subscriber k "has" update i at the first time it got u<j> for any j >= i (a relay
  // that pushes the current value may coalesce: a late push for i carries u<i+1>).
  const allHist = new Hist(), effHist = new Hist();
  let missing = 0, superseded = 0, lost = 0, completeUpdates = 0, effComplete = 0;
  const missingPerUpdate = {};
  const subsConnected = subs.filter(Boolean).length;
  for (let i = 0; i < U; i++) {
    if (isNaN(sendT[i])) continue;
    let mx = 0, miss = 0, effMx = 0, effMiss = 0;
    for (let k = 0; k < S; k++) {
      if (!subs[k]) continue;
      const v = recv[i][k];
      if (isNaN(v)) miss++; else if (v - sendT[i] > mx) mx = v - sendT[i];
      let first = NaN, later = false;
      for (let j = i; j < U; j++) {
        const w = recv[j][k];
        if (!isNaN(w)) { if (j > i) later = true; if (isNaN(first) || w < first) first = w; }
      }
      if (isNaN(v)) { if (later) superseded++; else lost++; }
      if (isNaN(first)) effMiss++; else if (first - sendT[i] > effMx) effMx = first - sendT[i];
    }
    missing += miss;
    if (miss) missingPerUpdate[i] = miss;
    if (miss === 0) { completeUpdates++; allHist.add(mx); }
    if (effMiss === 0) { effComplete++; effHist.add(effMx); }
  }
  closing = true;
  finish({ stats: Object.assign(st, { subs_connected: subsConnected,
    deliveries_expected: st.updates_sent * subsConnected, deliveries_missing: missing,
    missing_superseded: superseded, missing_lost: lost, updates_complete: completeUpdates,
    updates_complete_effective: effComplete }), missing_per_update: missingPerUpdate,
    hist_all: allHist.toJSON(), hist_all_effective: effHist.toJSON(), hist_delivery: deliveryHist.toJSON(),
    hist_writer_ack: writerAckHist.toJSON(), writer_unacked: writerPending.size });
}

// ---------- mode: idle (memory per connection) ----------
async function modeIdle() {
  const onMsg = (conn, m) => { if (m['@'] === undefined) classifyOther(m); };
  const t0 = now();
  const conns = await openMany(cfg.conns, onMsg, cfg.connectParallel || 50);
  const ok = conns.filter(Boolean);
  const hs = ok.filter((c) => c.handshake).length;
  emit({ event: 'ready', conns: ok.length, handshakes: hs, connect_s: (now() - t0) / 1000 });
  await waitStdin('close', cfg.holdMaxMs || 60000);
  const still = ok.filter((c) => c.open).length;
  closing = true;
  finish({ conns: ok.length, handshakes: hs, still_open_at_close: still });
}

// ---------- mode: soak (bench/soak.py: steady traffic over many connections for minutes) ----------
// cfg.conns connections (this process's share; global index = cfg.idxBase + local index). Groups of
// cfg.groupSize consecutive global indices share cfg.soulsPerGroup souls `${cfg.prefix}/g<group>/s<k>`;
// every connection subscribes (get) to all its group's souls, then puts one field of its own,
// c<global index> = "<seq>@<send time ms>", every cfg.putEveryMs (alternating souls), and gets one
// of its group's souls every cfg.getEveryMs. So every put is pushed to the group's other members.
// Open loop: puts go out on schedule whatever the acks do; no ack within cfg.opTimeoutMs is a
// timeout. A connection closed by the relay is counted and reopened (after cfg.reconnectDelayMs),
// handshaken and resubscribed. Control over stdin: "go" starts the traffic, each "tick" is answered
// with {"event":"tick"} holding that interval's counters and latency histograms, "stop" stops the
// traffic, waits up to cfg.drainMs for outstanding acks/replies, then prints the result (totals).
async function modeSoak() {
  const N = cfg.conns, G = cfg.groupSize || 10, K = cfg.soulsPerGroup || 2, base = cfg.idxBase || 0;
  const putEvery = cfg.putEveryMs || 2000, getEvery = cfg.getEveryMs || 0, opTimeout = cfg.opTimeoutMs || 10000;
  const absNow = () => performance.timeOrigin + performance.now(); // wall-clock ms with sub-ms resolution
  const groupOf = (li) => Math.floor((base + li) / G);
  const soulOf = (g, k) => `${cfg.prefix}/g${g}/s${k}`;
  const groupMembers = (g) => { // local indices of group g in this process
    const lo = Math.max(0, g * G - base), hi = Math.min(N, (g + 1) * G - base);
    const out = []; for (let j = lo; j < hi; j++) out.push(j); return out;
  };
  const slots = new Array(N).fill(null);      // the live connection of each local index
  const subscribed = new Uint8Array(N);       // its subscription gets were answered
  const seen = new Array(N).fill(null);       // per connection: "soul|field" -> last value pushed to it
  const nextPut = new Float64Array(N), nextGet = new Float64Array(N), seq = new Uint32Array(N);
  const pendingPuts = new Map(), pendingGets = new Map(), subWait = new Map();
  const timedOut = new Set();                 // ids given up on (late replies are counted, not matched)
  const errSamples = [];
  let phase = 'setup', lastState = 0, tGo = 0, tickSeq = 0;
  const nextState = () => { let s = Date.now(); if (s <= lastState) s = lastState + 0.001; lastState = s; return s; };
  const newCounters = () => ({ puts_sent: 0, acks_ok: 0, err_acks: 0, timeouts: 0, late_acks: 0,
    gets_sent: 0, get_replies: 0, get_err: 0, get_timeouts: 0, late_get_replies: 0,
    pushes_in: 0, push_fields: 0, push_expected: 0, push_echo: 0, push_dup: 0, push_other: 0,
    forwarded_gets_in: 0, disconnects: 0, reconnects: 0, reconnect_fail: 0, resubscribe_fail: 0,
    send_fail: 0, dam_errors: 0, ws_errors: 0, unknown_replies: 0 });
  let iv = newCounters();
  const tot = newCounters();
  const inc = (k, n) => { iv[k] += (n === undefined ? 1 : n); tot[k] += (n === undefined ? 1 : n); };
  const newHists = () => ({ ack: new Hist(), get: new Hist(), push: new Hist() });
  let ivH = newHists();
  const totH = newHists();
  const addLat = (k, ms) => { ivH[k].add(ms); totH[k].add(ms); };
  const remember = (id) => { if (timedOut.size < 200000) timedOut.add(id); };
  // counters kept by the shared connection code: fold their growth into the interval counters
  let lastShared = { dam_errors: 0, ws_errors: 0, unknown_replies: 0 };
  const foldShared = () => {
    for (const k of Object.keys(lastShared)) { const d = counters[k] - lastShared[k]; if (d) inc(k, d); lastShared[k] = counters[k]; }
  };

  function onPush(conn, m) {
    if (m.get) { inc('forwarded_gets_in'); return; }
    if (!m.put || typeof m.put !== 'object') { inc('push_other'); return; }
    inc('pushes_in');
    const me = 'c' + (base + conn.idx);
    const t = absNow();
    let mine = seen[conn.idx];
    if (!mine) mine = seen[conn.idx] = new Map();
    for (const soul of Object.keys(m.put)) {
      const node = m.put[soul];
      if (!node || typeof node !== 'object') continue;
      for (const f of Object.keys(node)) {
        if (f === '_' || f[0] !== 'c') continue;
        const v = node[f];
        if (typeof v !== 'string') continue;
        if (f === me) { inc('push_echo'); continue; }
        const key = soul + '|' + f;
        if (mine.get(key) === v) { inc('push_dup'); continue; }
        mine.set(key, v); // bounded: groupSize x soulsPerGroup entries per connection
        inc('push_fields');
        const at = v.indexOf('@');
        if (at > 0) addLat('push', t - parseFloat(v.slice(at + 1)));
      }
    }
  }
  const onMsg = (conn, m) => {
    const at = m['@'];
    if (at === undefined) return onPush(conn, m);
    let p = pendingPuts.get(at);
    if (p) {
      pendingPuts.delete(at);
      if (m.err !== undefined) {
        inc('err_acks'); if (errSamples.length < 10) errSamples.push('put: ' + String(m.err).slice(0, 200));
      } else { inc('acks_ok'); inc('push_expected', p.expect); addLat('ack', now() - p.t); }
      return;
    }
    p = pendingGets.get(at);
    if (p) {
      pendingGets.delete(at);
      if (m.err !== undefined) {
        inc('get_err'); if (errSamples.length < 10) errSamples.push('get: ' + String(m.err).slice(0, 200));
      } else { inc('get_replies'); addLat('get', now() - p.t); }
      return;
    }
    const w = subWait.get(at);
    if (w) { subWait.delete(at); w(m); return; }
    if (timedOut.has(at)) { if (at[0] === 'g') inc('late_get_replies'); else inc('late_acks'); return; }
    counters.unknown_replies++; // e.g. further replies to a completed get (folded in by foldShared)
  };

  // subscribe: get every soul of the connection's group, wait (bounded) for each reply
  function subscribe(conn) {
    const g = groupOf(conn.idx);
    const waits = [];
    for (let k = 0; k < K; k++) {
      waits.push(new Promise((resolve) => {
        const id = 's' + rid().slice(1);
        const t = setTimeout(() => { subWait.delete(id); resolve(false); }, opTimeout);
        subWait.set(id, (m) => { clearTimeout(t); resolve(m.err === undefined); });
        if (!send(conn, JSON.stringify({ '#': id, get: { '#': soulOf(g, k) } }))) { clearTimeout(t); subWait.delete(id); resolve(false); }
      }));
    }
    return Promise.all(waits).then((oks) => oks.every(Boolean));
  }
  function watchClose(conn) {
    conn.ws.on('close', () => {
      if (closing || slots[conn.idx] !== conn) return;
      subscribed[conn.idx] = 0;
      inc('disconnects');
      if (phase === 'setup' || phase === 'run') setTimeout(() => reconnect(conn.idx), cfg.reconnectDelayMs || 1000);
    });
  }
  async function reconnect(li) {
    if (closing || phase === 'drain') return;
    const c = await openConn(li, onMsg);
    if (!c) { inc('reconnect_fail'); if (!closing && phase === 'run') setTimeout(() => reconnect(li), cfg.reconnectDelayMs || 1000); return; }
    slots[li] = c; watchClose(c);
    inc('reconnects');
    if (!(await waitHandshake(c, cfg.handshakeTimeoutMs || 3000))) counters.handshake_missing++;
    if (await subscribe(c)) subscribed[li] = 1; else inc('resubscribe_fail');
  }

  function sendPut(li) {
    const c = slots[li];
    const g = groupOf(li);
    const n = ++seq[li];
    const soul = soulOf(g, n % K);
    let expect = 0; // group members subscribed right now, other than the writer
    for (const j of groupMembers(g)) if (j !== li && subscribed[j] && slots[j] && slots[j].open) expect++;
    const id = 'p' + rid().slice(1);
    const t = now();
    const f = 'c' + (base + li);
    if (!send(c, putFrame(id, soul, { [f]: n + '@' + absNow().toFixed(3) }, nextState()))) { inc('send_fail'); return; }
    pendingPuts.set(id, { t, expect });
    inc('puts_sent');
  }
  function sendGet(li) {
    const c = slots[li];
    const soul = soulOf(groupOf(li), (Math.random() * K) | 0);
    const id = 'g' + rid().slice(1);
    const t = now();
    if (!send(c, JSON.stringify({ '#': id, get: { '#': soul } }))) { inc('send_fail'); return; }
    pendingGets.set(id, { t });
    inc('gets_sent');
  }

  // ---- setup: connect, seed each group's souls, subscribe ----
  const tSetup = now();
  const conns = await openMany(N, onMsg, cfg.connectParallel || 50);
  for (let li = 0; li < N; li++) if (conns[li]) { slots[li] = conns[li]; watchClose(conns[li]); }
  const open = conns.filter(Boolean).length;
  // seed: the first connected member of each group writes a `seed` field to every group soul
  const seedWaits = [];
  let seedAcked = 0, seedSent = 0;
  const groups = new Set(); for (let li = 0; li < N; li++) groups.add(groupOf(li));
  for (const g of groups) {
    const writer = groupMembers(g).map((j) => slots[j]).find((c) => c && c.open);
    if (!writer) continue;
    for (let k = 0; k < K; k++) {
      seedWaits.push(new Promise((resolve) => {
        const id = 's' + rid().slice(1);
        const t = setTimeout(() => { subWait.delete(id); resolve(); }, opTimeout);
        subWait.set(id, (m) => { clearTimeout(t); if (m.err === undefined) seedAcked++; resolve(); });
        seedSent++;
        send(writer, putFrame(id, soulOf(g, k), { seed: 0 }, nextState()));
      }));
    }
  }
  await Promise.all(seedWaits);
  // subscribe, at most cfg.connectParallel connections at a time
  let nextSub = 0;
  const subWorker = async () => {
    while (nextSub < N) {
      const li = nextSub++;
      const c = slots[li];
      if (c && c.open && (await subscribe(c))) subscribed[li] = 1;
    }
  };
  const sw = []; for (let k = 0; k < Math.min(cfg.connectParallel || 50, N); k++) sw.push(subWorker());
  await Promise.all(sw);
  const nSub = subscribed.reduce((a, b) => a + b, 0);
  foldShared();
  const setupCounters = iv; iv = newCounters(); // setup-time disconnects etc. are reported, not mixed in
  emit({ event: 'ready', conns: open, handshakes: conns.filter((c) => c && c.handshake).length, subscribed: nSub,
    seed_sent: seedSent, seed_acked: seedAcked, setup_s: (now() - tSetup) / 1000, setup_counters: setupCounters });
  if (!(await waitStdin('go', cfg.goTimeoutMs || 60000))) return finish({ aborted: 'no go' }, 5);

  // ---- run ----
  phase = 'run';
  tGo = now();
  for (let li = 0; li < N; li++) {
    nextPut[li] = tGo + Math.random() * putEvery; // spread evenly over one period
    nextGet[li] = getEvery ? tGo + Math.random() * getEvery : Infinity;
  }
  const sched = setInterval(() => {
    if (phase !== 'run') return;
    const t = now();
    for (let li = 0; li < N; li++) {
      const c = slots[li];
      const ready = c && c.open && subscribed[li];
      if (t >= nextPut[li]) {
        if (ready) sendPut(li);
        nextPut[li] += putEvery;
        if (nextPut[li] < t) nextPut[li] = t + putEvery; // was down: no catch-up burst
      }
      if (t >= nextGet[li]) {
        if (ready) sendGet(li);
        nextGet[li] += getEvery;
        if (nextGet[li] < t) nextGet[li] = t + getEvery;
      }
    }
  }, 20);
  const sweep = setInterval(() => {
    const t = now();
    for (const [id, p] of pendingPuts) if (t - p.t > opTimeout) { pendingPuts.delete(id); remember(id); inc('timeouts'); }
    for (const [id, p] of pendingGets) if (t - p.t > opTimeout) { pendingGets.delete(id); remember(id); inc('get_timeouts'); }
    if (stdinEnded && !finished) { // parent gone: stop at once
      clearInterval(sched); clearInterval(sweep); closing = true;
      finish({ aborted: 'stdin closed', totals: tot }, 4);
    }
  }, 250);
  const snapshot = () => {
    let openNow = 0, subNow = 0;
    for (let li = 0; li < N; li++) { if (slots[li] && slots[li].open) { openNow++; if (subscribed[li]) subNow++; } }
    return { open_conns: openNow, subscribed_conns: subNow, pending_puts: pendingPuts.size, pending_gets: pendingGets.size };
  };
  let stopping = null;
  lineHook = (line) => {
    if (line === 'tick') {
      foldShared();
      emit(Object.assign({ event: 'tick', seq: ++tickSeq, t_s: (now() - tGo) / 1000, counters: iv,
        hist_ack: ivH.ack.toJSON(), hist_get: ivH.get.toJSON(), hist_push: ivH.push.toJSON() }, snapshot()));
      iv = newCounters(); ivH = newHists();
      return true;
    }
    if (line === 'stop') { if (stopping) stopping(); return true; }
    return false;
  };
  await new Promise((resolve) => { stopping = resolve; });
  phase = 'drain';
  clearInterval(sched);
  const tDrain = now();
  while ((pendingPuts.size || pendingGets.size) && now() - tDrain < (cfg.drainMs || 10000)) await sleep(50);
  const unacked = pendingPuts.size, unanswered = pendingGets.size;
  clearInterval(sweep);
  foldShared();
  const snap = snapshot();
  closing = true;
  finish(Object.assign({ totals: tot, last_interval: iv, hist_ack: totH.ack.toJSON(), hist_get: totH.get.toJSON(),
    hist_push: totH.push.toJSON(), unacked_at_end: unacked, unanswered_gets_at_end: unanswered,
    drain_s: (now() - tDrain) / 1000, run_s: (tDrain - tGo) / 1000, err_samples: errSamples,
    setup_counters: setupCounters, conns: N, idx_base: base }, snap));
}

const modes = { put: modePut, preload: modePreload, get: modeGet, fanout: modeFanout, idle: modeIdle,
  soak: modeSoak };
if (!modes[cfg.mode]) { emit({ event: 'result', error: 'unknown mode ' + cfg.mode }); process.exit(2); }
modes[cfg.mode]().catch((e) => finish({ error: String(e && e.stack || e) }, 7));
