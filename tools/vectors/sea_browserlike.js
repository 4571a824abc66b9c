// Helper for record_sea.js: runs SEA the way a browser does (gun/gun.js + gun/sea.js only, so
// JSON.parseAsync/stringifyAsync are the native-JSON ones; a Node process that loads
// require('gun') gets lib/yson.js instead, whose stringifyAsync sorts object keys).
// Reads {"pairs": {...}, "jobs": [...]} on stdin, writes {"results": [...]} on stdout.
//   {"op": "put", "as": "A", "soul", "key", "value" | "link": soul, "state"?, "cert"?}
//        -> {"value": wireValue, "state": n} captured from the client's outgoing put
//   {"op": "certify", "certificants", "policy", "authority": "A", "opt"?} -> "SEA{...}"
'use strict';
process.env.MULTICAST = 'false';
const log = console.log;
console.log = () => {};
const G = require('gun/gun');
require('gun/sea');
const SEA = G.SEA;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  if (JSON.stringifyAsync.toString().includes('ify()')) throw new Error('yson is loaded');
  const clients = {};
  const client = async (name) => {
    if (clients[name]) return clients[name];
    const gun = G({peers: [], localStorage: false});
    const outs = [];
    gun.on('out', function (msg) { if (msg.put) outs.push(JSON.parse(JSON.stringify(msg.put))); this.to.next(msg) });
    const user = gun.user();
    await new Promise((res, rej) => user.auth(input.pairs[name], (ack) => (ack.err ? rej(new Error(ack.err)) : res())));
    return (clients[name] = {gun, outs});
  };
  const results = [];
  for (const job of input.jobs) {
    if (job.op === 'certify') {
      results.push(await SEA.certify(job.certificants, job.policy, input.pairs[job.authority], null, job.opt || {}));
      continue;
    }
    const c = await client(job.as);
    c.outs.length = 0;
    const opts = {};
    if (job.state !== undefined) opts.state = job.state;
    if (job.cert) opts.opt = {cert: job.cert};
    c.gun.get(job.soul).get(job.key).put(job.link ? c.gun.get(job.link) : job.value, null, opts);
    let found = null;
    for (let i = 0; i < 400 && !found; i++) {
      await sleep(5);
      for (const p of c.outs) {
        const n = p[job.soul];
        if (n && Object.prototype.hasOwnProperty.call(n, job.key)) { found = {value: n[job.key], state: n._['>'][job.key]}; break }
      }
    }
    if (!found) throw new Error('browser-like client did not send ' + job.soul + ' ' + job.key);
    results.push(found);
  }
  process.stdout.write(JSON.stringify({results}));
  process.exit(0);
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1) });
