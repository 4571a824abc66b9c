'use strict';
// N real GunJS clients (gun/gun + SEA) in one Node process, each with the gunrelay plugin
// installed, for bench/ack_time.py. Prints {"event":"ready"} once every client has read the
// current reset record, then {"event":"reset","i":k,"t":ms} as each one applies a reset.
// Usage: node bench/ack_clients.js '{"peer":"http://127.0.0.1:PORT/gun","pub":"...","n":50,"hardMs":120000}'
console.log = function () { console.error.apply(console, arguments); };
const path = require('path');
const cfg = JSON.parse(process.argv[2]);
const Gun = require('gun/gun');
require('gun/sea');
const gunrelay = require(path.join(__dirname, '..', 'src', 'gunrelay', 'client', 'gunrelay.js'));
const WS = require('ws');
setTimeout(() => process.exit(3), cfg.hardMs || 120000).unref();

function emit(o) { process.stdout.write(JSON.stringify(o) + '\n'); }
let ready = 0;
for (let i = 0; i < cfg.n; i++) {
  const gun = Gun({peers: [cfg.peer], localStorage: false, radisk: false, axe: false, multicast: false, WebSocket: WS});
  gunrelay.install(gun, {
    relayPub: cfg.pub,
    onReset: (record) => emit({event: 'reset', i: i, reset: record.reset_id, t: Date.now()}),
  });
  // connected and subscribed: a read of the relay's record answers once the socket is up
  gun.user(cfg.pub).get('reset').get('epoch').once(() => { if (++ready === cfg.n) { emit({event: 'ready', n: cfg.n}); } });
}
process.stdin.on('data', () => process.exit(0));
