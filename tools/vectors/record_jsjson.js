// Records JSON.stringify(JSON.parse(text)) for many JSON texts -> tests/vectors/jsjson.json
// Schema: [{"input_json": "<JSON text>", "stringify": "<what JS JSON.stringify printed>"}]
// Python must json.loads(input_json) and reproduce `stringify` exactly with gunrelay.core.jsjson.
// Deterministic: fixed inputs plus inputs from a seeded PRNG.
'use strict';
const {writeVectors, prng} = require('./common');

const texts = [];
const add = (t) => texts.push(t);

// --- integers
['0', '-0', '1', '-1', '7', '30', '100', '999999999', '4294967295', '4294967296',
 '1795575722649', '1795575722650', '9007199254740991', '9007199254740992', '-9007199254740992',
 '9007199254740993', '-9007199254740993', '9007199254740995', '18014398509481985',
 '1152921504606846976', '123456789012345678901', '99999999999999999999', '100000000000000000000',
 '999999999999999999999', '1000000000000000000000', '12345678901234567890123456789',
 '18446744073709551615', '18446744073709551616', '-18446744073709551617',
 '1' + '0'.repeat(308), '1' + '0'.repeat(309), '1' + '0'.repeat(400), '-' + '9'.repeat(400),
].forEach(add);
// --- floats and exponents
['0.0', '-0.0', '1.0', '1.5', '-1.5', '0.1', '0.2', '0.30000000000000004', '3.14', '2.5e-3',
 '1795575793400.5', '1700000000000.001', '1700000000000.002', '1700000000000.999',
 '1795575722649.0010', '1e21', '1e+21', '1E21', '-1e21', '1e20', '1.5e20', '123e18', '1e22',
 '1.7976931348623157e308', '-1.7976931348623157e308', '1e308', '1e309', '-1e400', '2e308',
 '1e-6', '0.000001', '1e-7', '0.0000001', '1.5e-7', '-1e-7', '123e-20', '1.23e-18',
 '5e-324', '-5e-324', '4.9406564584124654e-324', '2.2250738585072014e-308', '1e-400',
 '0.1e1', '10e-1', '100e-2', '0.000123', '1.0000000000000002', '0.9999999999999999',
 '123456789.123456789', '4.35', '0.0001', '0.00001', '1e16', '1.5e16', '12345678901234567',
 '5e-7', '1.7e-6', '9.999999999999999e20', '9.999999999999999e-7', '1e-5', '1E-5', '1e0',
 '-0.0000001', '0e10', '-0e-10', '2.0e1',
].forEach(add);
// --- literals
['true', 'false', 'null'].forEach(add);
// --- strings (JSON text; escapes are decoded by the JSON parser on both sides)
['""', '"a"', '"hello world"', '"\\""', '"a\\"b"', '"\\\\"', '"\\\\\\""', '"\\/"', '"/"',
 '"\\b\\f\\n\\r\\t"', '"\\u0000"', '"\\u0001\\u0002\\u001f"', '"\\u007f"', '"\\u0080\\u009f"',
 '"\\u00a0"', '"\\u2028"', '"\\u2029"', '"a\\u2028b\\u2029c"', '"\\ufeff"', '"\\ufffe\\uffff"',
 '"\\ue000"', '"\\uffff"', '"é"', '"\\u00e9"', '"日本語"', '"\\ud83d\\ude00"', '"😀"',
 '"a😀b"', '"\\ud800"', '"\\udbff"', '"\\udc00"', '"\\udfff"', '"x\\ud800y"', '"\\ud800\\ud800"',
 '"\\udc00\\ud800"', '"\\ude00\\ud83d"', '"\\ud83d\\ude00\\ud83d"', '"\\ud83d😀"', '"😀\\ude00"',
 '"\\u0041"', '"\\u00"', // the last is invalid JSON; filtered below
 '"{\\":\\":\\"hello\\",\\"~\\":\\"sig==\\"}"', '"SEA{\\"m\\":\\"x\\"}"',
 '"tab\\there"', '"<script>&amp;\'"', '"\\u003c\\u003e\\u0026"',
].forEach(add);
let s = '"'; for (let c = 0; c < 0x20; c++) { s += '\\u' + c.toString(16).padStart(4, '0') } add(s + '"');
// --- arrays
['[]', '[1,2,3]', '[null,true,false]', '[[],[[]],{}]', '[1.0,-0,1e21,1e-7]', '["a",{"b":[1]}]'].forEach(add);
// --- objects, including integer-like keys (JS enumerates array-index keys first, ascending)
['{}', '{"a":1}', '{"b":1,"a":2}', '{"#":"soul"}', '{"#":"~pub/x"}',
 '{"#":"s",".":"k",":":"v",">":1795575793400.5}',
 '{"b":1,"a":2,"10":3,"2":4,"01":5,"-1":6,"1.5":7,"4294967294":8,"4294967295":9,"0":10}',
 '{"z":{"9":1,"10":2,"x":3},"1":{"b":[],"a":{}}}', '{"a":1,"b":2,"a":3}', '{"1":1,"1":2}',
 '{"__proto__":1}', '{"":"empty key"}', '{"a b":1,"\\u2028":2,"😀":3,"\\ud800":4}',
 '{"007":1,"7":2}', '{"4294967295":1,"4294967296":2,"42":3}', '{" 1":1,"1 ":2,"+1":3,"1e2":4}',
 '{"١":1,"b":2}', '{"b":1,"٣":2,"2":3}', '{"²":1}', '{"b":1,"0":2,"00":3}',
 '{":":{"#":"~a.b/profile"},"~":"c2ln"}', '{":":30,"~":"c2ln"}', '{":":null,"~":"c2ln"}',
 '{"_":{"#":"n",">":{"a":1700000000000.001,"b":1e21}},"a":"x","b":1e-7}',
].forEach(add);
// --- whitespace variations (the parser drops it, stringify never prints it)
[' 1 ', '\t[ 1 , 2 ]\n', '{ "a" : [ 1 , { "b" : null } ] }', '\r\n"x"\r\n'].forEach(add);

// --- random doubles from raw bit patterns, and random decimals (seeded)
const rnd = prng(20201241);
const buf = new DataView(new ArrayBuffer(8));
for (let i = 0; i < 300; i++) {
  buf.setUint32(0, Math.floor(rnd() * 4294967296));
  buf.setUint32(4, Math.floor(rnd() * 4294967296));
  const x = buf.getFloat64(0);
  if (Number.isFinite(x)) add(JSON.stringify(x));
}
for (let i = 0; i < 200; i++) {
  const mant = Math.floor(rnd() * 1e6) + '.' + Math.floor(rnd() * 1e6);
  const exp = Math.floor(rnd() * 60) - 30;
  add((rnd() < 0.5 ? '-' : '') + mant + 'e' + exp);
}
for (let i = 0; i < 100; i++) {
  // state-like numbers: ms timestamps with a /999 fraction, as Gun.state() makes them
  const t = 1600000000000 + Math.floor(rnd() * 400000000000);
  add(JSON.stringify(t + Math.floor(rnd() * 999) / 999));
}
for (let i = 0; i < 60; i++) { add(JSON.stringify(Math.round(rnd() * 2 ** (20 + i)) * 2 ** i)) }
// random strings of code units (including lone surrogates and controls)
const pool = [0x0, 0x1f, 0x20, 0x22, 0x5c, 0x41, 0x7f, 0xe9, 0x2028, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xfeff, 0xffff];
for (let i = 0; i < 100; i++) {
  let str = '';
  const n = Math.floor(rnd() * 8);
  for (let j = 0; j < n; j++) { str += String.fromCharCode(pool[Math.floor(rnd() * pool.length)]) }
  add(JSON.stringify(str));
}

const vectors = [];
const seen = new Set();
for (const t of texts) {
  if (seen.has(t)) continue;
  seen.add(t);
  let v;
  try { v = JSON.parse(t) } catch (e) { continue } // keep only valid JSON texts
  vectors.push({input_json: t, stringify: JSON.stringify(v)});
}
writeVectors('jsjson.json', vectors);
