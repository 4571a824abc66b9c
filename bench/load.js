'use strict';
// Raw-wire GUN load generator for bench/run.py. One process, many WebSocket connections.
//
// Usage: node bench/load.js '<json config>'
// Protocol with the parent (bench/run.py):
//   stdout: one JSON object per line: {"event":"ready",...} once connections are set up,
//           {"event":"result",...} at the end (then the process exits).
//   stdin:  "go\n" starts the timed part (put/get/fanout); "close\n" ends an idle run.
// Every phase is bounded: per-op timeouts, a drain timeout and a hard process timeout.
//
// Modes (cfg.mode):
//   put     cfg.conns connections x cfg.inflight puts in flight, warm-up then measured window.
//   preload put cfg.count souls `${cfg.prefix}/${i}` (fields a:'v'+i, b:i), wait for every ack.
//   get     random whole-node gets over the preloaded souls, cfg.conns x cfg.inflight.
//   fanout  cfg.subs subscribers get one soul, one writer puts cfg.updates updates every cfg.interval ms.
//   idle    open cfg.conns connections, complete the dam handshake, stay idle until "close".

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
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  stdinBuf += d;
  let i;
  while ((i = stdinBuf.indexOf('\n')) >= 0) {
    const line = stdinBuf.slice(0, i).trim();
    stdinBuf = stdinBuf.slice(i + 1);
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

const modes = { put: modePut, preload: modePreload, get: modeGet, fanout: modeFanout, idle: modeIdle };
if (!modes[cfg.mode]) { emit({ event: 'result', error: 'unknown mode ' + cfg.mode }); process.exit(2); }
modes[cfg.mode]().catch((e) => finish({ error: String(e && e.stack || e) }, 7));
