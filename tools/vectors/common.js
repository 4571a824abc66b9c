// Shared helpers for the vector recorders. Run every recorder from the repository root:
//   node tools/vectors/record_<name>.js
'use strict';
const fs = require('fs');
const path = require('path');

const OUT_DIR = path.join(__dirname, '..', '..', 'tests', 'vectors');

// One vector per line: easy to diff, and still one JSON document. JSON.stringify escapes lone
// surrogates (well-formed JSON.stringify, Node >= 12), so the file is always valid UTF-8.
function writeVectors(name, vectors) {
  fs.mkdirSync(OUT_DIR, {recursive: true});
  const file = path.join(OUT_DIR, name);
  const body = '[\n' + vectors.map((v) => JSON.stringify(v)).join(',\n') + '\n]\n';
  fs.writeFileSync(file, body);
  console.log('wrote ' + vectors.length + ' vectors to ' + path.relative(process.cwd(), file));
}

// Deterministic PRNG (mulberry32), so recorders that generate inputs are reproducible.
function prng(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

module.exports = {writeVectors, prng, OUT_DIR};
