#!/usr/bin/env node
// plugin_driver.js: a real GunJS client (npm gun 0.2020.1241, `gun/gun` + `gun/sea`) with the reset
// plugin src/gunrelay/client/gunrelay.js installed, driven line by line over stdin/stdout.
//
// Usage: node plugin_driver.js '<json config>'
//   config: {"peers": [url, ...], "relayPub": PUB, "store": "/path/store.json" | null, "keep": [...],
//            "plugin": true, "early": [GRAPH, ...], "deadline": 60000}
//   store: a JSON file standing in for localStorage (the plugin's memory across runs); null = memory.
//   early: graphs said through the mesh right after Gun() starts, before the socket is open, with
//          the states they carry: GunJS keeps such frames in peer.queue until it connects (a write
//          made while offline or still connecting).
// The client keeps no copy of its own (localStorage:false, radisk:false, axe:false).
//
// Output: one JSON object per line. Events: {"event": "hi"|"reset"|"on"|"ready", ...}. Every command
// line {"id": N, "op": ..., ...} gets exactly one {"id": N, ...} answer. Ops:
//   {"op":"put", "soul", "key", "value"}          -> {ack}          (a normal GunJS write)
//   {"op":"set", "soul", "key", "item"}           -> {ack}          gun.get(soul).get(key).set(item)
//   {"op":"say", "graph"}                         -> {ack}          a raw put with the given states
//   {"op":"once", "soul", "key"?}                 -> {defined, value}
//   {"op":"subscribe", "soul", "keys"?}           -> {}             then {"event":"on", soul, key, value} per change
//                                                     (key null: the node is gone), {"event":"key", ...} per keys[] change
//   {"op":"graph", "prefix"?, "soul"?}            -> {graph}        the in-memory graph (filtered)
//   {"op":"status"}                               -> {pid, mark, applied, fenced, pending, last, replacement, queue}
//   {"op":"check"}                                -> status after controller.check()
//   {"op":"exit"}
// Every wait is bounded (default 6000 ms, "timeout" overrides); the process exits by "deadline".
'use strict';

console.log = function () { console.error.apply(console, arguments); };  // stdout is ours
const fs = require('fs');
const path = require('path');

const cfg = JSON.parse(process.argv[2] || '{}');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
setTimeout(() => { out({event: 'deadline'}); process.exit(3); }, cfg.deadline || 60000);
process.on('uncaughtException', (e) => { out({event: 'uncaught', error: String(e && e.stack || e)}); });

const Gun = require('gun/gun');
require('gun/sea');
const WebSocket = require('ws');
const gunrelay = require(path.resolve(__dirname, '../../../src/gunrelay/client/gunrelay.js'));

function fileStore(file) {
  const read = () => { try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) { return {}; } };
  return {
    getItem: (k) => (k in read() ? read()[k] : null),
    setItem: (k, v) => { const d = read(); d[k] = String(v); fs.writeFileSync(file, JSON.stringify(d)); },
  };
}

const gun = Gun({peers: cfg.peers, localStorage: false, radisk: false, axe: false, multicast: false, WebSocket});
const root = gun._;
(cfg.early || []).forEach((graph) => root.opt.mesh.say({put: graph}));

let ctl = null;
if (cfg.plugin !== false) {
  ctl = gunrelay.install(gun, {
    relayPub: cfg.relayPub,
    keep: cfg.keep || [],
    store: cfg.store ? fileStore(cfg.store) : undefined,
    onReset: (record, info) => out({event: 'reset', record, info}),
  });
  ctl.ready.then(() => out({event: 'ready'}));
}
root.on('hi', function (peer) { this.to.next(peer); out({event: 'hi', peer: peer.url || peer.id}); });

function clean(v) {
  if (v === null || typeof v !== 'object') { return v; }
  const o = {};
  Object.keys(v).forEach((k) => { if (k !== '_') { o[k] = clean(v[k]); } });
  return o;
}

function bounded(ms, fn) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({timeout: true}), ms);
    fn((v) => { clearTimeout(t); resolve(v); });
  });
}

function status() {
  const queue = [];
  Object.keys(root.opt.peers).forEach((k) => (root.opt.peers[k].queue || []).forEach((q) => queue.push(q)));
  if (!ctl) { return {pid: root.opt.pid, queue}; }
  return {pid: root.opt.pid, mark: ctl.mark, applied: ctl.applied(), fenced: ctl.fenced, pending: ctl.pendingAcks(), last: ctl.last,
    replacement: ctl.replacement, ackErrors: ctl.ackErrors, queue};
}

const ops = {
  put: (c, ms) => bounded(ms, (ok) => gun.get(c.soul).get(c.key).put(c.value, (ack) => ok({ack: {ok: ack.ok, err: ack.err}}))),
  set: (c, ms) => bounded(ms, (ok) => gun.get(c.soul).get(c.key).set(c.item, (ack) => ok({ack: {ok: ack.ok, err: ack.err}}))),
  say: (c, ms) => bounded(ms, (ok) => {
    const id = String.random(9);
    root.on('in', function (msg) { if (msg && msg['@'] === id) { ok({ack: {ok: msg.ok, err: msg.err}}); } this.to.next(msg); });
    root.opt.mesh.say({'#': id, put: c.graph});
  }),
  once: (c, ms) => bounded(ms, (ok) => {
    let chain = gun.get(c.soul);
    if (c.key) { chain = chain.get(c.key); }
    chain.once((v) => ok({defined: v !== undefined, value: v === undefined ? null : clean(v)}));
  }),
  subscribe: (c) => {
    gun.get(c.soul).on((node) => {
      if (node === null || node === undefined) { out({event: 'on', soul: c.soul, key: null, value: null}); return; }
      Object.keys(node).forEach((k) => { if (k !== '_') { out({event: 'on', soul: c.soul, key: k, value: clean(node[k])}); } });
    });
    (c.keys || []).forEach((key) => gun.get(c.soul).get(key).on((v) => out({event: 'key', soul: c.soul, key, value: clean(v)})));
    return Promise.resolve({});
  },
  graph: (c) => {
    const g = {};
    Object.keys(root.graph).forEach((s) => {
      if ((c.soul && s === c.soul) || (c.prefix !== undefined && s.indexOf(c.prefix) === 0)) { g[s] = root.graph[s]; }
    });
    return Promise.resolve({graph: JSON.parse(JSON.stringify(g))});
  },
  status: () => Promise.resolve(status()),
  check: (c, ms) => bounded(ms, (ok) => ctl.check().then(() => ok(status()))),
  exit: () => { setTimeout(() => process.exit(0), 50); return Promise.resolve({bye: true}); },
};

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (!line) { continue; }
    let c;
    try { c = JSON.parse(line); } catch (e) { out({error: 'bad line ' + line}); continue; }
    const fn = ops[c.op];
    if (!fn) { out({id: c.id, error: 'unknown op ' + c.op}); continue; }
    fn(c, c.timeout || 6000).then((r) => out(Object.assign({id: c.id}, r)),
      (e) => out({id: c.id, error: String(e && e.stack || e)}));
  }
});
process.stdin.on('end', () => process.exit(0));
