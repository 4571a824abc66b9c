#!/usr/bin/env node
// rad_dump.js DIR: every record of a RAD folder, read by GunJS's own RAD code (npm gun 0.2020.1241:
// each data file parsed by lib/radisk.js's r.parse over lib/rfs.js, walked with lib/radix.js; the
// files are those of the folder, as rfs's store.list gives them, less RAD's list %1C), one JSON
// line each on stdout:
//   {"soul", "key", "value", "state"}        (the soul ends at the first U+001B of the radix key)
// then {"done": true, "count": N}. The truth the import is checked against; run it on a copy of the
// folder. Exits by 30 s no matter what (code 3).
'use strict';
console.log = function () { console.error.apply(console, arguments); }; // stdout is ours
const Radisk = require('gun/lib/radisk');
const Radix = require('gun/lib/radix');
const Store = require('gun/lib/rfs');
const fs = require('fs');

const opt = {file: process.argv[2], log: function () {}};
opt.store = Store(opt);
const rad = Radisk(opt);
const esc = String.fromCharCode(27);
let count = 0;
function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }
function finish(code) { process.stdout.write(JSON.stringify({done: code === 0, count: count}) + '\n', () => process.exit(code)); }

const files = fs.readdirSync(opt.file).filter((name) => name !== '%1C').sort();
(function next(i) {
  if (i >= files.length) { finish(0); return; }
  rad.parse(decodeURIComponent(files[i]), function (err, disk) {
    if (err || !disk) { out({error: String(err || 'no data'), file: files[i]}); }
    Radix.map(disk, function (val, key) {
      const at = key.indexOf(esc);
      out({soul: key.slice(0, at), key: key.slice(at + 1), value: val[':'], state: val['>']});
      count++;
    });
    next(i + 1);
  });
}(0));
setTimeout(() => finish(3), 30000).unref();
