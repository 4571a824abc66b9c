#!/usr/bin/env node
// bound_client.js: one real GunJS client (npm gun 0.2020.1241, `gun/gun`, no storage of its own)
// whose websocket leaves from a chosen local address and may carry extra request headers. The
// reverse-proxy tests need clients with different source addresses (127.0.0.2, 127.0.0.3, ...:
// all loopback on Linux) and a client that forges X-Forwarded-For. GunJS opens its socket with
// `new opt.WebSocket(url)`; the class given here is `ws` with `localAddress` and `headers` set,
// everything else is stock GunJS. TLS: `wss://` peers are trusted through NODE_EXTRA_CA_CERTS.
//
// Usage: node bound_client.js '{"peer": "https://127.0.0.1:PORT/gun", "localAddress": "127.0.0.2",
//                               "headers": {"X-Forwarded-For": "203.0.113.9"}, "deadline": 30000}'
//
// Then one JSON command a line on stdin, one JSON line on stdout for each (with its "id"):
//   {"id":1, "op":"put", "soul":S, "key":K, "value":V, "timeout":5000} -> {"id":1, "ack":{...}|null}
//   {"id":2, "op":"once", "soul":S, "key":K, "timeout":5000}           -> {"id":2, "value":V|null, "defined":bool}
//   {"id":3, "op":"on", "soul":S, "key":K}                            -> {"id":3, "following":true}, then {"event":"on", "value":V} per update
//   {"id":3, "op":"exit"}                                             -> the process exits 0
// and events as they happen: {"event":"open"}, {"event":"close", "code":N},
// {"event":"refused", "status":N} (the upgrade was answered with an HTTP status, e.g. 403 when banned),
// {"event":"error", "message":"..."}. The process exits by "deadline" ms (default 30000) no matter what.
'use strict';

console.log = function () { console.error.apply(console, arguments); }; // stdout is ours
const readline = require('readline');

const cmd = JSON.parse(process.argv[2]);
const deadline = cmd.deadline || 30000;
function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }
setTimeout(() => { emit({ event: 'deadline' }); process.exit(3); }, deadline).unref();

const Gun = require('gun/gun');
const WS = require('ws');

class BoundWebSocket extends WS {
  constructor(url, protocols) {
    super(url, protocols, { localAddress: cmd.localAddress, headers: cmd.headers || {} });
    this.on('open', () => emit({ event: 'open' }));
    this.on('close', (code) => emit({ event: 'close', code }));
    this.on('error', (e) => {
      const message = String(e && e.message || e);
      const refused = /Unexpected server response: (\d+)/.exec(message); // ws's word for an upgrade answered otherwise
      emit(refused ? { event: 'refused', status: Number(refused[1]) } : { event: 'error', message });
    });
  }
}

const gun = Gun({
  peers: [cmd.peer],
  localStorage: false,
  radisk: false,
  axe: false,
  multicast: false,
  WebSocket: BoundWebSocket,
});

function clean(value) {
  if (value && typeof value === 'object') {
    const copy = Object.assign({}, value);
    delete copy._;
    return copy;
  }
  return value === undefined ? null : value;
}

function run(step) {
  const timeout = step.timeout || 5000;
  let answered = false;
  const answer = (obj) => { if (!answered) { answered = true; emit(Object.assign({ id: step.id }, obj)); } };
  if (step.op === 'put') {
    setTimeout(() => answer({ ack: null, timeout: true }), timeout);
    gun.get(step.soul).get(step.key).put(step.value, (ack) => answer({ ack: { ok: !!ack.ok, err: ack.err || null } }));
  } else if (step.op === 'once') {
    setTimeout(() => answer({ value: null, defined: false, timeout: true }), timeout);
    gun.get(step.soul).get(step.key).once((value) => answer({ value: clean(value), defined: value !== undefined }), { wait: 1500 });
  } else if (step.op === 'on') {  // follow soul.key: each value arrives as an {event: 'on'} line
    gun.get(step.soul).get(step.key).on((value) => emit({ event: 'on', soul: step.soul, key: step.key, value: clean(value) }));
    answer({ following: true });
  } else if (step.op === 'exit') {
    answer({ exit: true });
    setTimeout(() => process.exit(0), 10);
  } else {
    answer({ error: 'unknown op ' + step.op });
  }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) { return; }
  try { run(JSON.parse(line)); } catch (e) { emit({ event: 'error', message: 'bad command: ' + e.message }); }
});
process.stdin.on('end', () => process.exit(0));
