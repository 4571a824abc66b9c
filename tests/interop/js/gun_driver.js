#!/usr/bin/env node
// gun_driver.js: one real GunJS client (npm gun 0.2020.1241, `gun/gun` + optional `gun/sea`) that runs
// a JSON script of steps against ONE relay and reports JSON on stdout.
//
// Usage:  node gun_driver.js '<json>'      or      node gun_driver.js @/path/to/command.json
//
// Command: {"peer": "http://127.0.0.1:PORT/gun", "sea": false, "deadline": 15000, "steps": [...]}
//
// The client keeps no copy of its own: localStorage:false, radisk:false, axe:false, multicast:false
// (protocol notes 5.4 and 9.2), so a fresh process can only learn data from the relay.
//
// Output, one JSON object per line on stdout (console.log is redirected to stderr):
//   {"event": "...", ...}                       progress events (ready markers, subscription callbacks)
//   {"done": true, "results": [...], "error": null|"..."}   always the last line
// Every step produces one entry in `results`: {"op", "name"?, ...step result}. A step that waits and
// does not get what it waited for within its `timeout` (ms, default 6000) gets {"timeout": true} and
// the script continues. The whole process exits by `deadline` ms no matter what (exit code 3).
//
// Steps (path = [soul, key, key, ...], resolved through the chain exactly as an app would). Any step
// may carry "timeout" (ms), "name" (copied into its result) and "progress": true (its result is also
// printed at once as {"event":"step", "index", "result"}).
//   {"op":"wait_connected", "new":false}         until the websocket to the peer is open (new: a
//                                                 different socket than the last one seen, i.e. reconnected)
//   {"op":"put", "path":[...], "value":V, "ack":true}        -> {ack, state}
//        state: the HAM state the write of path[1] carried on the wire (len-2 paths, non-object value)
//        "ack": false puts without a callback and waits only until the PUT frame is sent
//   {"op":"put", "path":[...], "ref":SOUL}                   puts a relation: .put(gun.get(SOUL))
//   {"op":"once", "path":[...], "wait":99}                   -> {defined, value}
//   {"op":"replay", "soul":S} | {"op":"replay", "graph":G}  re-sends the client's in-memory copy of S
//        (or G) with its original states through its mesh -> {ack, sent}
//   {"op":"set", "path":[...], "items":[...]}                -> {acks:[...]}  (all set() calls at once)
//   {"op":"map_once", "path":[...], "expect":N}              -> {items:{key:value}, count}
//   {"op":"subscribe", "path":[...], "name":"s", "stream":false}   starts .on(); with stream, every
//        callback is also printed at once as {"event":"on", "name", "value", "defined"}
//   {"op":"wait_sub", "name":"s", "until":COND, "brief":false} -> {matched, nevents, events}
//        (brief: only the last 3 events)
//        COND: {"any":true} | {"equals":V} | {"null":true} | {"count":N} (N events) | {"keys":N}
//              | {"has":{k:v,...}} (an event whose object value has those keys/values)
//   {"op":"on", "path":[...], "until":COND}                  subscribe + wait_sub in one step
//   {"op":"graph", "soul":S, "key":K}                        -> {has, value, state} from local memory
//   {"op":"wait_graph", "soul":S, "key":K, "equals":V | "equals_line":true}
//   {"op":"emit", "event":"name", ...}                       prints {"event":"name", ...}
//   {"op":"wait_line"}                                       -> {line} (parsed JSON line from stdin)
//   {"op":"sleep", "ms":N}
//   SEA ("sea": true):
//   {"op":"user_create", "alias":A, "pass":P}               -> {ack}   ({ok:0,pub} or {err})
//   {"op":"user_auth", "alias":A, "pass":P}                 -> {ack, pub}
//   {"op":"user_put", "path":[key,...], "value":V}          -> {ack}   (into the logged-in user's space)
//   {"op":"user_once", "pub":PUB, "path":[key,...]}         -> {defined, value} via gun.user(pub)
//   {"op":"sea_forge", "soul":S, "key":K, "value":V, "state":ST, "star":false}
//        signs {#,.,:,>} with a brand-new key pair, as SEA signs user-space values; returns
//        {pub, wire} where wire is the string a client would put on the wire ('*' added if star).
'use strict';

console.log = function () { console.error.apply(console, arguments); }; // stdout is ours
const fs = require('fs');

const started = Date.now();
const out = [];
let finished = false;

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function finish(error, code) {
  if (finished) { return; }
  finished = true;
  const line = JSON.stringify({done: true, results: out, error: error || null, ms: Date.now() - started}) + '\n';
  // exit only once everything written so far has been flushed to the pipe (writes to a pipe can
  // be asynchronous); the fallback is generous so a slow reader does not truncate the output
  process.stdout.write(line, () => process.exit(code || 0));
  setTimeout(() => process.exit(code || 0), 20000).unref();
}

let cmd;
try {
  const arg = process.argv[2] || '';
  cmd = JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg);
} catch (e) {
  finish('bad command: ' + e, 2);
  return;
}

const deadline = cmd.deadline || 15000;
setTimeout(() => finish('deadline ' + deadline + ' ms exceeded', 3), deadline);
process.on('uncaughtException', (e) => finish('uncaught: ' + (e && e.stack || e), 4));

const Gun = require('gun/gun');
let SEA = null;
if (cmd.sea) { SEA = require('gun/sea'); }
// The socket class records every PUT this client sends, so a put step can report the exact state
// its write carried on the wire (Gun.put is asynchronous and does not expose it).
const WS = require('ws');
const sentPuts = {};
class RecordingWebSocket extends WS {
  send(data, ...rest) {
    try {
      const parsed = JSON.parse(data);
      (Array.isArray(parsed) ? parsed : [parsed]).forEach((m) => {
        if (m && m.put && m['#'] && !m['@']) { sentPuts[m['#']] = m.put; }
      });
    } catch (e) { /* not JSON: not ours to judge */ }
    return super.send(data, ...rest);
  }
}
const gun = Gun({
  peers: [cmd.peer],
  localStorage: false,
  radisk: false,
  axe: false,
  multicast: false,
  WebSocket: RecordingWebSocket,
});

function sentState(soul, key, value) {
  // The state of the latest PUT sent for soul.key with exactly this value (null if none was sent).
  let st = null;
  const want = JSON.stringify(value);
  Object.keys(sentPuts).forEach((id) => {
    const node = sentPuts[id][soul];
    if (node && node._ && node._['>'] && key in node._['>'] && JSON.stringify(node[key]) === want) {
      if (st === null || node._['>'][key] > st) { st = node._['>'][key]; }
    }
  });
  return st;
}

// ---- helpers -------------------------------------------------------------------------------------

function clean(v) {
  // Strip GUN metadata so results compare as plain JSON; relations stay {"#": soul}.
  if (v === undefined) { return undefined; }
  if (v === null || typeof v !== 'object') { return v; }
  const o = {};
  Object.keys(v).forEach((k) => { if (k !== '_') { o[k] = clean(v[k]); } });
  return o;
}

function chain(path, base) {
  let c = base || gun;
  path.forEach((k) => { c = c.get(k); });
  return c;
}

function pickAck(ack) {
  // The ack message object as received (drop internal fields such as `$` or `_`).
  if (!ack || typeof ack !== 'object') { return ack; }
  const o = {};
  ['#', '@', 'ok', 'err', 'pub'].forEach((k) => { if (k in ack) { o[k] = ack[k]; } });
  return o;
}

function withTimeout(ms, fn) {
  // fn(resolve) ; resolves with fn's value, or {timeout:true} after ms.
  return new Promise((resolve) => {
    let done = false;
    const t = setTimeout(() => { if (!done) { done = true; resolve({timeout: true}); } }, ms);
    const ok = (v) => { if (!done) { done = true; clearTimeout(t); resolve(v); } };
    try { fn(ok); } catch (e) { ok({exception: String(e && e.stack || e)}); }
  });
}

function graphEntry(soul, key) {
  const node = gun._.graph[soul];
  if (!node || !node._ || !node._['>'] || !(key in node._['>'])) { return {has: false}; }
  return {has: true, value: node[key] === undefined ? null : node[key], state: node._['>'][key]};
}

function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

// stdin lines (only used by wait_line)
const lines = [];
let lineWaiter = null;
let stdinOn = false;
function startStdin() {
  if (stdinOn) { return; }
  stdinOn = true;
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i); buf = buf.slice(i + 1);
      if (!l.trim()) { continue; }
      lines.push(l);
      if (lineWaiter) { const w = lineWaiter; lineWaiter = null; w(); }
    }
  });
}

const subs = {};
let lastWire = null;

function subscribe(path, name, stream) {
  const s = subs[name] = {events: [], waiters: []};
  chain(path).on(function (data, key) {
    const ev = {defined: data !== undefined, value: clean(data), key: key};
    s.events.push(ev);
    if (stream) { emit({event: 'on', name: name, value: ev.value, defined: ev.defined}); }
    s.waiters.slice().forEach((w) => w());
  });
  return s;
}

function matches(s, until, soul) {
  const evs = s.events;
  if (!until || until.any) { return evs.length > 0; }
  if ('count' in until) { return evs.length >= until.count; }
  if ('equals' in until) { return evs.some((e) => e.defined && same(e.value, until.equals)); }
  if (until.null) { return evs.some((e) => e.value === null || e.value === undefined); }
  if ('has' in until) {
    return evs.some((e) => e.value && typeof e.value === 'object' &&
      Object.keys(until.has).every((k) => same(e.value[k], until.has[k])));
  }
  if ('keys' in until) {
    const last = evs.length ? evs[evs.length - 1].value : null;
    return !!last && typeof last === 'object' && Object.keys(last).length >= until.keys;
  }
  return false;
}

function waitSub(name, until, ms, brief) {
  const s = subs[name];
  if (!s) { return Promise.resolve({error: 'no subscription ' + name}); }
  return withTimeout(ms, (ok) => {
    const check = () => { if (matches(s, until)) { ok({matched: true}); } };
    s.waiters.push(check);
    check();
  }).then((r) => {
    const evs = brief ? s.events.slice(-3) : s.events;
    return Object.assign({matched: !!r.matched, timeout: !!r.timeout, nevents: s.events.length, events: evs});
  });
}

function user() { return gun.user(); }

// ---- steps ---------------------------------------------------------------------------------------

const ops = {
  wait_connected(st, ms) {
    // with "new": true, only a different socket than the one the previous wait_connected saw counts
    return withTimeout(ms, (ok) => {
      let n = 0;
      (function poll() {
        const peer = (gun._.opt.peers || {})[cmd.peer];
        const wire = peer && peer.wire;
        if (wire && wire.readyState === 1 && !(st.new && wire === lastWire)) {
          lastWire = wire;
          return ok({connected: true});
        }
        if (++n < 6000) { setTimeout(poll, 10); }
      }());
    });
  },
  put(st, ms) {
    const simple = st.path.length === 2 && !st.ref && (st.value === null || typeof st.value !== 'object');
    return withTimeout(ms, (ok) => {
      const c = chain(st.path);
      const value = st.ref ? gun.get(st.ref) : st.value; // ref: put a relation to that soul's node
      if (st.ack !== false) { c.put(value, (ack) => ok({ack: pickAck(ack)})); return; }
      c.put(value);
      if (!simple) { ok({sent: null}); return; }
      let n = 0; // without a callback: resolve once the PUT frame has gone out on the socket
      (function poll() {
        if (sentState(st.path[0], st.path[1], st.value) !== null) { return ok({sent: true}); }
        if (++n < 2000) { setTimeout(poll, 5); }
      }());
    }).then((r) => {
      // state: the HAM state this write of path[1] carried on the wire (simple values, len-2 paths)
      r.state = simple ? sentState(st.path[0], st.path[1], st.value) : null;
      return r;
    });
  },
  replay(st, ms) {
    // A stale peer without any plugin: re-send this client's in-memory copy of a node (or the given
    // graph) with its ORIGINAL states through its own mesh, as it would answer or re-sync, and report
    // the relay's answer to that message.
    const graph = st.graph || {[st.soul]: JSON.parse(JSON.stringify(gun._.graph[st.soul] || null))};
    if (!st.graph && !graph[st.soul]) { return Promise.resolve({missing: true}); }
    const id = String.random(12);
    return withTimeout(ms, (ok) => {
      gun._.on('in', function (msg) {
        if (msg && msg['@'] === id) { ok({ack: pickAck(msg), sent: graph}); }
        this.to.next(msg);
      });
      gun._.opt.mesh.say({'#': id, put: graph});
    });
  },
  once(st, ms) {
    return withTimeout(ms, (ok) => {
      chain(st.path).once((data, key) => ok({defined: data !== undefined, value: clean(data)}),
        st.wait ? {wait: st.wait} : undefined);
    });
  },
  set(st, ms) {
    const acks = [];
    return withTimeout(ms, (ok) => {
      const c = chain(st.path);
      st.items.forEach((item) => {
        c.set(item, (ack) => {
          acks.push(pickAck(ack));
          if (acks.length === st.items.length) { ok({}); }
        });
      });
    }).then((r) => Object.assign(r, {acks: acks, nacks: acks.length}));
  },
  map_once(st, ms) {
    const items = {};
    return withTimeout(ms, (ok) => {
      chain(st.path).map().once((data, key) => {
        items[key] = clean(data);
        if (Object.keys(items).length >= st.expect) { ok({}); }
      });
    }).then((r) => Object.assign(r, {items: items, count: Object.keys(items).length}));
  },
  subscribe(st) {
    subscribe(st.path, st.name || 's', st.stream);
    return Promise.resolve({subscribed: st.name || 's'});
  },
  wait_sub(st, ms) { return waitSub(st.name || 's', st.until, ms, st.brief); },
  on(st, ms) {
    const name = st.name || ('on' + Math.random());
    subscribe(st.path, name);
    return waitSub(name, st.until, ms, st.brief);
  },
  graph(st) { return Promise.resolve(graphEntry(st.soul, st.key)); },
  wait_graph(st, ms) {
    const want = st.equals_line ? JSON.parse(lines.length ? lines[lines.length - 1] : 'null').value : st.equals;
    return withTimeout(ms, (ok) => {
      let n = 0;
      (function poll() {
        const g = graphEntry(st.soul, st.key);
        if (g.has && same(g.value, want)) { return ok({matched: true}); }
        if (++n < 2000) { setTimeout(poll, 10); }
      }());
    }).then((r) => Object.assign(r, {want: want}, graphEntry(st.soul, st.key)));
  },
  emit(st) {
    const e = Object.assign({}, st); delete e.op; emit(e);
    return Promise.resolve({emitted: st.event});
  },
  wait_line(st, ms) {
    startStdin();
    const have = lines.length;
    return withTimeout(ms, (ok) => {
      const check = () => { if (lines.length > have) { ok({line: JSON.parse(lines[lines.length - 1])}); } else { lineWaiter = check; } };
      check();
    });
  },
  sleep(st) { return new Promise((r) => setTimeout(() => r({slept: st.ms}), st.ms)); },

  // SEA
  user_create(st, ms) {
    return withTimeout(ms, (ok) => { user().create(st.alias, st.pass, (ack) => ok({ack: pickAck(ack)})); });
  },
  user_auth(st, ms) {
    return withTimeout(ms, (ok) => {
      user().auth(st.alias, st.pass, (ack) => ok({ack: pickAck(ack), pub: ack && ack.err ? null : (user().is || {}).pub}));
    });
  },
  user_put(st, ms) {
    return withTimeout(ms, (ok) => { chain(st.path, user()).put(st.value, (ack) => ok({ack: pickAck(ack)})); });
  },
  user_once(st, ms) {
    return withTimeout(ms, (ok) => {
      chain(st.path, gun.user(st.pub)).once((data) => ok({defined: data !== undefined, value: clean(data)}),
        st.wait ? {wait: st.wait} : undefined);
    });
  },
  async sea_forge(st) {
    const pair = await SEA.pair();
    const packed = {'#': st.soul, '.': st.key, ':': st.value, '>': st.state};
    const sig = await SEA.sign(packed, pair, null, {raw: 1});
    const v = {':': st.value, '~': sig.s};
    if (st.star) { v['*'] = pair.pub; }
    return {pub: pair.pub, wire: JSON.stringify(v)};
  },
};

(async function main() {
  const steps = cmd.steps || [];
  for (let i = 0; i < steps.length; i++) {
    const st = steps[i];
    const fn = ops[st.op];
    let r;
    if (!fn) { r = {error: 'unknown op ' + st.op}; } else {
      try { r = await fn(st, st.timeout || 6000); } catch (e) { r = {exception: String(e && e.stack || e)}; }
    }
    const entry = Object.assign({op: st.op}, st.name ? {name: st.name} : {}, r);
    out.push(entry);
    if (st.progress) { emit({event: 'step', index: i, result: entry}); }
  }
  finish(null, 0);
}());
