// Records GunJS's HAM decision (gun/src/root.js `ham`) -> tests/vectors/ham.json
//
// Each case loads a fresh copy of gun/gun.js with a fake clock (so Gun.state() returns exactly
// `machine`), seeds the in-memory graph with the current value/state, and feeds the incoming
// value through the real put path (root.on('in', {put})). The decision is observed, not derived:
//   "incoming"   ham emitted root.on('put') for the key (the incoming value is accepted)
//   "defer"      ham scheduled itself again with setTimeout(state - now) (a future state)
//   "historical" nothing emitted and incoming_state <  current_state (dropped as old)
//   "current"    nothing emitted and incoming_state == current_state (the current value is kept)
// Schema: [{"machine": n, "incoming_state": n, "current_state": n | null, "incoming_value": v,
//           "current_value": v | null, "current_absent": bool, "result": "..."}]
// With current_absent true there is no node/key in the graph, and current_state/current_value
// are null. A present current_value may itself be null (a tombstone).
// Deterministic: no randomness; the clock is faked.
'use strict';
const path = require('path');
const {writeVectors} = require('./common');

const RealDate = Date;
let NOW = 0;
function FakeDate(...args) {
  if (!new.target) return new RealDate(NOW).toString();
  if (args.length) return new RealDate(...args);
  return {valueOf: () => NOW, getTime: () => NOW, toString: () => String(NOW)};
}
FakeDate.now = () => NOW;
FakeDate.UTC = RealDate.UTC;
FakeDate.parse = RealDate.parse;
global.Date = FakeDate;
const realSetTimeout = global.setTimeout;

const gunDir = path.dirname(require.resolve('gun/gun'));
function freshGun() {
  for (const k of Object.keys(require.cache)) if (k.startsWith(gunDir + path.sep)) delete require.cache[k];
  return require('gun/gun');
}

const MD = 2147483647;
function run(c) {
  NOW = c.machine;
  const Gun = freshGun();
  const gun = Gun({peers: [], localStorage: false, multicast: false, axe: false});
  const root = gun._;
  if (!c.current_absent) {
    root.graph.s = {_: {'#': 's', '>': {k: c.current_state}}, k: c.current_value};
  }
  let accepted = false;
  root.on('put', function (msg) { if (msg.put['#'] === 's' && msg.put['.'] === 'k') accepted = true; this.to.next(msg) });
  const want = c.incoming_state - c.machine;
  let deferred = false;
  global.setTimeout = Object.assign(function (fn, ms) {
    if (ms === (want > MD ? MD : want) && want > 0) { deferred = true; return 0 }
    return realSetTimeout.apply(this, arguments);
  }, realSetTimeout);
  try {
    root.on('in', {'#': 'm' + Math.random().toString(36).slice(2), put: {s: {_: {'#': 's', '>': {k: c.incoming_state}}, k: c.incoming_value}}});
  } finally {
    global.setTimeout = realSetTimeout;
  }
  if (accepted && deferred) throw new Error('both accepted and deferred: ' + JSON.stringify(c));
  if (accepted) return 'incoming';
  if (deferred) return 'defer';
  if (!c.current_absent && c.incoming_state < c.current_state) return 'historical';
  if (!c.current_absent && c.incoming_state === c.current_state) return 'current';
  throw new Error('dropped without a known reason: ' + JSON.stringify(c));
}

const cases = [];
const T = 1795575722649;
const add = (machine, is, cs, iv, cv, absent) => cases.push({
  machine, incoming_state: is, current_state: absent ? null : cs, incoming_value: iv,
  current_value: absent ? null : cv, current_absent: !!absent,
});

// Timing: future / now / past, with and without a current value.
for (const [m, is] of [[T, T + 1], [T, T + 0.001], [T, T + 1000], [T, T + 3e9], [T, T], [T, T - 1],
  [T + 0.5, T + 0.5], [T + 0.5, T + 0.501], [1700000000000.001, 1700000000000.002],
  [1700000000000.002, 1700000000000.001], [T, 0], [T, -5], [T, 1e21]]) {
  add(m, is, null, 'x', null, true);
  add(m, is, T - 10, 'x', 'y', false);
  add(m, is, T - 10, 'x', 'x', false);
}
// Historical vs newer against a present current value.
for (const [is, cs] of [[T - 1, T], [T, T - 1], [T - 0.001, T], [T, T - 0.001],
  [1700000000000.001, 1700000000000.002], [1700000000000.002, 1700000000000.001], [0, 1], [1, 0],
  [-1, 0], [T, 1e21]]) {
  for (const [iv, cv] of [['a', 'b'], ['b', 'a'], ['a', 'a'], [null, 'a'], ['a', null]]) add(T, is, cs, iv, cv, false);
}
// A future state beats nothing: even a historical-looking value is deferred when state > now.
add(T, T + 5, T + 10, 'x', 'y', false);
add(T, T + 5, T + 5, 'x', 'y', false);

// Equal state: every pair from this list, both ways round.
const values = ['', 'a', 'b', 'c', 'A', 'aa', 'ab', 'b"', '"', '\\', 'a"b', "a'b", ' ', '\u0000', '\n',
  '\u007f', '\u00e9', '\ue000', '\uffff', '\ud83d\ude00', '\ud800', 'null', 'true', '1', '10', '9',
  '{"#":"a"}', 0, 1, -1, 2, 9, 10, 100, 1.5, -1.5, 0.1, 1e21, 1e-7, 123e-20, 1795575793400.5,
  true, false, null, {'#': 'a'}, {'#': 'b'}, {'#': 'aa'}, {'#': '~pub/x'}, {'#': '\ue000'},
  {'#': '\ud83d\ude00'}];
for (const iv of values) for (const cv of values) add(T, T, T, iv, cv, false);
for (const iv of values) add(T, T, null, iv, null, true);

const vectors = cases.map((c) => Object.assign(c, {result: run(c)}));
global.Date = RealDate;
writeVectors('ham.json', vectors);
const tally = {};
for (const v of vectors) tally[v.result] = (tally[v.result] || 0) + 1;
console.log(tally);
process.exit(0);
