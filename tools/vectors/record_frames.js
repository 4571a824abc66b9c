// Records real GunJS wire frames -> tests/vectors/frames.json
//
// Starts the reference relay (tools/node_relay.js: npm gun 0.2020.1241, RAD storage, AXE on) as a
// child process on a free 127.0.0.1 port with a temporary data folder, puts a small logging
// WebSocket proxy (ws@7) in front of it, and drives real browser-like Node clients
// (require('gun/gun') + require('gun/sea'), i.e. gun.js + sea.js without lib/server) through the
// proxy. Every text frame that crosses the proxy is recorded, in arrival order, exactly as sent:
//
//   [{"dir": "C>R" | "R>C", "text": "<frame>", "scenario": "<name>", "client": "<A|B|...>"}]
//
//   dir       C>R: client to relay; R>C: relay to client
//   scenario  the step of the script that was running when the proxy saw the frame (the script
//             waits for the link to go quiet between steps, so late acks land in their own step)
//   client    which client's connection carried the frame (the proxy learns it from ?c=<name>
//             in the peer URL; the relay itself is dialed at plain /gun)
//
// Scenarios: connect (dam handshakes), put-callback, nested-put, set, once-node, once-key,
// map-once, on-live (another client's write pushed to an .on() subscriber), chunked-node (a
// 20-key node served from relay memory in 9-key chunks), lex-get, null-delete, sea-user
// (user.create/auth/put and a read of the user's data), reconnect (the proxy drops every client
// socket but idle K's; the clients re-dial after ~2 s and re-send their subscriptions, key GETs with '##'),
// keepalive (waits for the relay's 20 s "[]" heartbeat).
//
// Message ids, peer ids, HAM states, SEA keys and signatures are random or clock-based, so the
// bytes change on every run; the scenarios and the frame shapes do not. Every wait is bounded;
// the run takes ~25 s and always ends within 60 s, killing the relay by its PID. Exit status 1
// (file still written) when a step timed out.
//
// Usage, from the repository root: node tools/vectors/record_frames.js
'use strict';
process.env.MULTICAST = 'false';
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const childProcess = require('child_process');
const WS = require('ws');
const {writeVectors} = require('./common');

const ROOT = path.join(__dirname, '..', '..');
const HARD_LIMIT_MS = 58000;
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const problems = [];
const say = (...a) => process.stderr.write('[record_frames +' + ((Date.now() - started) / 1000).toFixed(1) + 's] ' + a.join(' ') + '\n');

// GunJS prints greetings and warnings on console.log; keep the recorder's own output readable.
const quietLog = console.log;
console.log = () => {};

let relay = null; // child process
let dataDir = null;
let proxyServer = null;
const frames = [];
let scenario = 'connect';
let lastFrameAt = Date.now();

function cleanup() {
  if (relay && relay.exitCode === null && relay.signalCode === null) {
    try { process.kill(relay.pid, 'SIGKILL') } catch (e) {}
  }
  if (dataDir) {
    try { fs.rmSync(dataDir, {recursive: true, force: true}) } catch (e) {}
  }
}

const guard = setTimeout(() => {
  say('hard time limit reached; writing what was recorded and exiting');
  problems.push('hard time limit');
  finish();
}, HARD_LIMIT_MS);

// ---------------------------------------------------------------------------------------------
// the reference relay, as a child process

function startRelay() {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gun-frames-relay-'));
  relay = childProcess.spawn(process.execPath, [path.join(ROOT, 'tools', 'node_relay.js'), '0', dataDir], {
    cwd: dataDir,
    env: Object.assign({}, process.env, {MULTICAST: 'false'}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  relay.stderr.on('data', () => {});
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('relay did not start within 10 s: ' + out)), 10000);
    relay.stdout.on('data', (d) => {
      out += d;
      const m = /node relay listening on (http:\/\/127\.0\.0\.1:\d+\/gun)/.exec(out);
      if (m) { clearTimeout(timer); out = ''; resolve(m[1]) }
      if (out.length > 100000) out = out.slice(-1000);
    });
    relay.on('exit', (code) => { clearTimeout(timer); reject(new Error('relay exited with ' + code)) });
  });
}

// ---------------------------------------------------------------------------------------------
// the logging proxy: client <-> proxy <-> relay, one upstream socket per client socket

const links = new Set();

function startProxy(relayUrl) {
  const upstreamUrl = relayUrl.replace(/^http/, 'ws');
  proxyServer = http.createServer((req, res) => { res.writeHead(404); res.end() });
  const wss = new WS.Server({server: proxyServer});
  wss.on('connection', (down, req) => {
    const client = (/[?&]c=([^&]*)/.exec(req.url || '') || [])[1] || '?';
    const up = new WS(upstreamUrl);
    const queue = [];
    const link = {down, up, client};
    links.add(link);
    const record = (dir, data) => {
      lastFrameAt = Date.now();
      if (typeof data !== 'string') { // ws@7 gives text frames as strings; GUN never sends binary
        problems.push('binary frame ' + dir + ' on ' + client);
        return;
      }
      frames.push({dir, text: data, scenario, client});
    };
    down.on('message', (data) => {
      record('C>R', data);
      if (up.readyState === WS.OPEN) up.send(data); else queue.push(data);
    });
    up.on('open', () => { while (queue.length) up.send(queue.shift()) });
    up.on('message', (data) => {
      record('R>C', data);
      if (down.readyState === WS.OPEN) down.send(data);
    });
    const close = () => {
      links.delete(link);
      try { down.terminate() } catch (e) {}
      try { up.terminate() } catch (e) {}
    };
    down.on('close', close);
    up.on('close', close);
    down.on('error', close);
    up.on('error', close);
  });
  return new Promise((resolve) => proxyServer.listen(0, '127.0.0.1', () => resolve('http://127.0.0.1:' + proxyServer.address().port + '/gun')));
}

function dropAllClientSockets(keep) {
  for (const link of Array.from(links)) {
    if (keep && link.client === keep) continue;
    try { link.down.terminate() } catch (e) {}
    try { link.up.terminate() } catch (e) {}
    links.delete(link);
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

async function waitFor(what, pred, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(10);
  }
  if (pred()) return true;
  problems.push('timeout: ' + what);
  say('timeout (' + timeoutMs + ' ms): ' + what);
  return false;
}

// Wait until no frame has crossed the proxy for quietMs (at most maxMs), so that late replies
// (RAD acks come ~250 ms after a put) are recorded under the step that caused them.
async function settle(quietMs = 350, maxMs = 3000) {
  const end = Date.now() + maxMs;
  while (Date.now() < end && Date.now() - lastFrameAt < quietMs) await sleep(20);
}

function step(name) {
  scenario = name;
  say('scenario ' + name);
}

// callback-style GUN call -> promise of its first callback argument, or undefined on timeout
function once(what, start, timeoutMs = 4000) {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      problems.push('timeout: ' + what);
      say('timeout (' + timeoutMs + ' ms): ' + what);
      resolve(undefined);
    }, timeoutMs);
    start((value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(value);
    });
  });
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(guard);
  try { dropAllClientSockets() } catch (e) {}
  try { proxyServer && proxyServer.close() } catch (e) {}
  cleanup();
  console.log = quietLog;
  writeVectors('frames.json', frames);
  const counts = {};
  for (const f of frames) {
    const k = f.scenario + ' ' + f.dir;
    counts[k] = (counts[k] || 0) + 1;
  }
  for (const k of Object.keys(counts)) quietLog('  ' + k + ': ' + counts[k]);
  if (problems.length) {
    quietLog('PROBLEMS:\n  ' + problems.join('\n  '));
    process.exit(1);
  }
  process.exit(0);
}

process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { cleanup(); process.exit(130) });

// ---------------------------------------------------------------------------------------------
// the script

async function main() {
  const relayUrl = await startRelay();
  say('relay ' + relayUrl + ' pid ' + relay.pid);
  const proxyUrl = await startProxy(relayUrl);
  say('proxy ' + proxyUrl);

  const Gun = require('gun/gun'); // what a browser loads: gun.js ...
  require('gun/sea'); // ... and sea.js (native JSON, no lib/server, no RAD in the client)
  const client = (name) => Gun({
    peers: [proxyUrl + '?c=' + name], localStorage: false, radisk: false, axe: false, multicast: false, WebSocket: WS,
  });
  const connected = (name) => frames.some((f) => f.client === name && f.dir === 'C>R' && /"dam":"\?"/.test(f.text));

  // connect: the relay's {dam:'?'} hello, the client's answer and its {dam:'hi'}
  step('connect');
  const A = client('A');
  const B = client('B');
  client('K'); // idle; kept through the reconnect step, so its link sees the 20 s keepalive early
  await waitFor('A, B and K handshake', () => connected('A') && connected('B') && connected('K'), 5000);
  await settle();

  // put with a callback: RAD acks it ~250 ms later; values of every kind
  step('put-callback');
  await once('put-callback ack', (cb) => A.get('wf-put').put({
    hello: 'world', n: 1, pi: 3.14159, neg: -42, yes: true, no: false, uni: 'h\u00e9llo \u2713 \ud83d\ude00 "q" \\ \n',
    empty: '',
  }, cb));
  await settle();

  // nested put: parent with relations plus child nodes, all souls in one message
  step('nested-put');
  await once('nested-put ack', (cb) => A.get('wf-nest').put({title: 'nest', link: {x: 1, deep: {y: true}}}, cb));
  await settle();

  // set(): random souls; a synchronous burst gets fractional HAM states (Gun.state() in one ms)
  step('set');
  const list = A.get('wf-list');
  const setAcks = [1, 2, 3, 4].map((i) => once('set ack ' + i, (cb) => list.set({name: 'item' + i, i: i}, cb)));
  await Promise.all(setAcks);
  await settle();

  // get().once() of a whole node, from a client that does not hold it
  step('once-node');
  await once('once-node', (cb) => B.get('wf-put').once(cb));
  await settle();

  // get(key).once(), and a path: wf-nest.link -> wf-nest/link.x
  step('once-key');
  await once('once-key', (cb) => B.get('wf-nest').get('title').once(cb));
  await once('once-path', (cb) => B.get('wf-nest').get('link').get('deep').get('y').once(cb));
  await settle();

  // map().once(): the list node, then each item's soul
  step('map-once');
  const seen = new Set();
  B.get('wf-list').map().once((v, k) => { seen.add(k) });
  await waitFor('map-once items', () => seen.size >= 4, 5000);
  await settle(400);

  // on(): B subscribes to a whole node and (on another soul) to one key; A writes, B gets AXE
  // pushes holding only what it subscribed to
  step('on-live');
  let liveMsg;
  let liveNode;
  B.get('wf-live').on((v) => { liveNode = v && v.msg });
  B.get('wf-livekey').get('msg').on((v) => { liveMsg = v });
  await settle(300);
  A.get('wf-live').put({msg: 'one', other: 1});
  A.get('wf-livekey').put({msg: 'one', other: 1});
  await waitFor('on-live one', () => liveMsg === 'one' && liveNode === 'one', 4000);
  A.get('wf-livekey').get('msg').put('two');
  await waitFor('on-live two', () => liveMsg === 'two', 4000);
  await settle();

  // a 20-key node; a fresh client reads it whole: the relay answers from memory in 9-key chunks
  step('chunked-node');
  const big = {};
  for (let i = 0; i < 20; i++) big['k' + String(i).padStart(2, '0')] = 'v' + i;
  await once('chunked-node ack', (cb) => A.get('wf-big').put(big, cb));
  await settle();
  const C = client('C');
  await waitFor('C handshake', () => connected('C'), 5000);
  await settle(200);
  let bigKeys = 0;
  C.get('wf-big').once((v) => { bigKeys = v ? Object.keys(v).filter((k) => k !== '_').length : -1 });
  await waitFor('chunked-node once', () => bigKeys !== 0, 4000);
  await settle();

  // lex gets on keys, from a client that does not hold the node (RAD answers; memory skips lex)
  step('lex-get');
  await once('lexA ack', (cb) => A.get('lexA').put({apple: 'v-apple', apricot: 'v-apricot', banana: 'v-banana', cherry: 'v-cherry'}, cb));
  await settle();
  const D = client('D');
  await waitFor('D handshake', () => connected('D'), 5000);
  await settle(200);
  await once('lex prefix + budget', (cb) => D.get('lexA').get({'.': {'*': 'ap'}, '%': 50000}).once(cb));
  await settle(300);
  await once('lex range', (cb) => D.get('lexA').get({'.': {'>': 'b', '<': 'c'}}).once(cb));
  await settle(300);
  const lexMapped = new Set();
  D.get('lexA').map({'.': {'*': 'ch'}}).once((v, k) => { lexMapped.add(k) });
  await waitFor('lex map', () => lexMapped.size >= 1, 3000);
  await settle();

  // null: a key delete and a null inside a node put (tombstones with a state)
  step('null-delete');
  await once('null key ack', (cb) => A.get('wf-put').get('n').put(null, cb));
  await once('null in node ack', (cb) => A.get('wf-nest').put({title: null}, cb));
  await settle();

  // SEA: create a user (alias lookups, the signed ~pub node and ~@alias), log in, write, and
  // let another client read the user's signed data
  step('sea-user');
  const E = client('E');
  await waitFor('E handshake', () => connected('E'), 5000);
  const user = E.user();
  const created = await once('user.create', (cb) => user.create('wf-alice', 'wf correct horse battery', cb), 10000);
  if (created && created.err) problems.push('user.create: ' + created.err);
  await settle(300);
  const authed = await once('user.auth', (cb) => user.auth('wf-alice', 'wf correct horse battery', cb), 10000);
  if (authed && authed.err) problems.push('user.auth: ' + authed.err);
  await settle(300);
  const userPut = await once('user put ack', (cb) => user.get('profile').put({name: 'Alice', age: 30}, cb), 6000);
  if (userPut && userPut.err) problems.push('user put: ' + userPut.err);
  await settle(300);
  const pub = user.is && user.is.pub;
  if (pub) {
    await once('read user profile', (cb) => C.get('~' + pub).get('profile').get('name').once(cb));
    await once('read alias list', (cb) => C.get('~@wf-alice').once(cb));
  } else {
    problems.push('sea-user: no pub after auth');
  }
  await settle();

  // reconnect: drop every client socket at the proxy (except idle K's); clients re-dial after ~2 s and re-send a
  // GET for every live subscription (B's key .on() carries '##', the hash of the value it holds)
  step('reconnect');
  const before = frames.length;
  dropAllClientSockets('K');
  const resubscribed = () => frames.slice(before).some((f) => f.client === 'B' && f.dir === 'C>R' && f.text.includes('"##"'));
  await waitFor('re-subscription with ##', resubscribed, 8000);
  await waitFor('A, B reconnected', () => ['A', 'B'].every((n) => frames.slice(before).some((f) => f.client === n && f.dir === 'C>R' && /"dam":"\?"/.test(f.text))), 5000);
  await settle(400);
  A.get('wf-live').get('msg').put('three');
  A.get('wf-livekey').get('msg').put('three');
  await waitFor('on-live after reconnect', () => liveMsg === 'three' && liveNode === 'three', 4000);
  await settle();

  // keepalive: the relay sends "[]" 20 s after each connection, then every 20 s
  step('keepalive');
  await waitFor('keepalive []', () => frames.some((f) => f.dir === 'R>C' && f.text === '[]'), Math.max(1000, HARD_LIMIT_MS - 3000 - (Date.now() - started)));
  await settle(200, 1000);
  say('done; chunked-node keys seen ' + bigKeys);
  finish();
}

main().catch((e) => {
  say('error: ' + (e && e.stack || e));
  problems.push('error: ' + (e && e.message || e));
  finish();
});
