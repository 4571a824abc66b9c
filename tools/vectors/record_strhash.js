// Records GunJS's String.hash (Java-style 31*h + code unit, int32 wrap) -> tests/vectors/strhash.json
// Schema: [{"input": "<string>", "hash": <int32>}]. String.hash("") returns 0 (its seed).
// GUN uses it for the '##' reply hash of GET answers (mesh.js).
'use strict';
require('gun/gun'); // installs String.hash
const {writeVectors, prng} = require('./common');

const inputs = ['', 'a', 'b', 'ab', 'hello', 'hello world', 'Aa', 'BB', '0', '\u0000', '\uffff',
  '\ud83d\ude00', '😀', '\ud800', 'é', '日本語', '"hello"', '{":":"hello","~":"sig"}',
  'x'.repeat(100), 'polygenelubricants', 'The quick brown fox jumps over the lazy dog',
  '~UR0MmIZv5A-oX2SHwxMnkbV_7P3fWD5VB2-6i-XXEQg.FWJLcW_zjv_lRPzyaWdJpY8L0nKLrF5LYXn-8_J7TeE'];
const rnd = prng(7);
for (let i = 0; i < 40; i++) {
  let s = '';
  const n = Math.floor(rnd() * 40);
  for (let j = 0; j < n; j++) s += String.fromCharCode(Math.floor(rnd() * (rnd() < 0.8 ? 128 : 65536)));
  inputs.push(s);
}
writeVectors('strhash.json', inputs.map((s) => ({input: s, hash: String.hash(s)})));
