#!/usr/bin/env node
// rad_fill.js DIR SOULS KEYS: writes a RAD folder the way a Node GUN relay does, with GunJS's own
// storage code (npm gun 0.2020.1241: lib/radisk.js over lib/rfs.js, the Node default): SOULS souls
// `bench/<i>` of KEYS fields each, saved as the relay's store.js saves a put's field
// (radisk(soul + ESC + key, {':': value, '>': state})). Values: strings, numbers, booleans, a null
// and a relation per soul. Saves go in rounds of 20,000, each round waiting for every
// callback (RAD's ack that the data is on disk), so memory stays bounded.
// Prints {"fields": N, "ms": T} at the end.
'use strict';
console.log = function () { console.error.apply(console, arguments); };
const Radisk = require('gun/lib/radisk');
const Store = require('gun/lib/rfs');

const dir = process.argv[2];
const souls = parseInt(process.argv[3] || '100000', 10);
const keys = parseInt(process.argv[4] || '10', 10);
const opt = {file: dir, log: function () {}};
opt.store = Store(opt);
const rad = Radisk(opt);
const esc = String.fromCharCode(27);
const ROUND = 20000;
const started = Date.now();
const base = started - 3600 * 1000;
let next = 0;
const total = souls * keys;

function value(i, j) {
  switch (j % 5) {
    case 0: return 'value ' + i + '.' + j + ' ünïcødé';
    case 1: return i * 1.5 + j;
    case 2: return (i + j) % 2 === 0;
    case 3: return j === 3 && i % 10 === 0 ? null : 'text ' + i;
    default: return {'#': 'bench/' + ((i + 1) % souls)};
  }
}

function round() {
  if (next >= total) {
    process.stdout.write(JSON.stringify({fields: total, ms: Date.now() - started}) + '\n', () => process.exit(0));
    return;
  }
  const end = Math.min(total, next + ROUND);
  let waiting = end - next;
  for (; next < end; next++) {
    const i = Math.floor(next / keys), j = next % keys;
    rad('bench/' + i + esc + 'k' + j, {':': value(i, j), '>': base + next}, (err) => {
      if (err) { console.error('save failed', err); process.exit(2); }
      if (--waiting === 0) { setImmediate(round); }
    });
  }
}
round();
