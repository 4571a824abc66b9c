#!/usr/bin/env node
// storm_writer.js: a write storm from many real GunJS clients (npm gun, `gun/gun`), for the crash
// tests: the relay is killed and restarted under it, and every put it reports acked must survive.
//
// Usage:  node storm_writer.js '<json>'
//   {"peer": "http://127.0.0.1:PORT/gun", "clients": 8, "inflight": 4, "prefix": "storm/x",
//    "timeout": 4000, "deadline": 120000}
//
// Each client is its own Gun instance with its own websocket (no local persistence: localStorage,
// radisk, axe and multicast off, protocol notes 9.2), keeping `inflight` puts outstanding. A put
// writes soul `${prefix}/${client}/${n}` with {v: "<client>-<n>"}. GunJS retries a lost connection
// once, 2 s later; if the relay is not back by then it forgets the peer for good (its 'bye' handler
// deletes it from opt.peers, and the retry returns when the peer is not there). So, as apps that
// outlive relay restarts do, a client whose put went unanswered names its peer again with
// gun.opt({peers}); its next put then opens a new socket.
//
// stdout, one JSON line per event:
//   {"acked": soul, "v": value}      the relay acknowledged the put (ack without err): it is durable
//   {"refused": soul, "err": text}   the relay answered with an error
//   {"done": true, "sent": N, "acked": N, "refused": N, "gave_up": N}   last line
// A put with no answer within `timeout` ms is given up (the relay died holding it); a late ack for
// it is still reported. stdin "stop\n" stops new puts; the process then waits up to `timeout` ms
// for the answers in flight and prints the summary. It exits by `deadline` ms no matter what.
'use strict';

console.log = function () { console.error.apply(console, arguments); };
const cfg = JSON.parse(process.argv[2] || '{}');
const Gun = require('gun/gun');
const WS = require('ws');  // Node 20 has no global WebSocket
// Each socket's life goes to stderr, so a run that stops getting acks shows what the clients saw.
class WebSocket extends WS {
  constructor(url, ...rest) {
    super(url, ...rest);
    const t0 = Date.now();
    this.on('open', () => console.error(`${new Date().toISOString()} open ${url}`));
    this.on('close', (code) => console.error(`${new Date().toISOString()} close ${code} after ${Date.now() - t0} ms`));
    this.on('error', (e) => console.error(`${new Date().toISOString()} error ${e.code || e.message}`));
  }
}

const clients = cfg.clients || 8;
const inflight = cfg.inflight || 4;
const timeoutMs = cfg.timeout || 4000;
const counts = {sent: 0, acked: 0, refused: 0, gave_up: 0};
let stopping = false;
let outstanding = 0;

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function finish() {
  emit(Object.assign({done: true}, counts));
  process.stdout.write('', () => process.exit(0));
  setTimeout(() => process.exit(0), 5000).unref();
}
setTimeout(finish, cfg.deadline || 120000).unref();

function client(index) {
  const gun = Gun({peers: [cfg.peer], localStorage: false, radisk: false, axe: false, multicast: false, WebSocket});
  let n = 0;
  function next() {
    if (stopping) { return; }
    const soul = `${cfg.prefix}/${index}/${n}`;
    const v = `${index}-${n}`;
    n += 1;
    counts.sent += 1;
    outstanding += 1;
    let answered = false;
    const timer = setTimeout(() => {
      if (answered) { return; }
      answered = true;
      counts.gave_up += 1;
      outstanding -= 1;
      gun.opt({peers: [cfg.peer]});
      next();
    }, timeoutMs);
    gun.get(soul).put({v: v}, (ack) => {
      if (ack && ack.err) {
        counts.refused += 1;
        emit({refused: soul, err: String(ack.err)});
      } else {
        counts.acked += 1;
        emit({acked: soul, v: v});
      }
      if (answered) { return; }  // a late answer for a put already given up
      answered = true;
      clearTimeout(timer);
      outstanding -= 1;
      next();
    });
  }
  for (let i = 0; i < inflight; i++) { next(); }
}

for (let i = 0; i < clients; i++) { client(i); }

process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  if (!d.includes('stop') || stopping) { return; }
  stopping = true;
  const until = Date.now() + timeoutMs;
  const poll = setInterval(() => {
    if (outstanding <= 0 || Date.now() > until) { clearInterval(poll); finish(); }
  }, 50);
});
