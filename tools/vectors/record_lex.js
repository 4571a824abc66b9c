// Records GunJS's text matcher String.match(key, lex) (gun/src/shim.js, used by lex GETs in
// gun.js chain code and by SEA certificates) -> tests/vectors/lex.json
// Schema: [{"key": <string>, "lex": <lex>, "match": <bool>}] plus "note" on unusual cases.
// In Node, Gun.text.match (the deprecated twin, which also lets '<' act as a prefix) is not
// installed, and SEA does `String.match = String.match || Gun.text.match`, so String.match is
// the matcher that runs everywhere in 0.2020.1241.
'use strict';
require('gun/gun'); // installs String.match
const {writeVectors} = require('./common');

const keys = ['', 'a', 'ab', 'abc', 'abd', 'b', 'ba', 'z', 'A', '10', '9', '1', '-',
  'inbox', 'inbox/x', 'inboy', 'Inbox', ' a', 'a ',
  '\ue000', '\uffff', '\ud83d\ude00', '\ud83d\ude00x', '\ud83d', '\ud7ff', '\u00e9'];
const stringLex = ['', 'a', 'ab', 'inbox', '\ud83d'];
const objLex = [
  {}, {'=': 'a'}, {'=': 'ab'}, {'=': ''}, {'*': 'a'}, {'*': 'ab'}, {'*': ''}, {'*': 'inbox'},
  {'*': '\ud83d'}, {'>': 'a'}, {'>': 'ab'}, {'>': 'b'}, {'>': ''}, {'<': 'b'}, {'<': 'ab'},
  {'<': ''}, {'<': 'a'}, {'>': 'a', '<': 'b'}, {'>': 'b', '<': 'a'}, {'>': 'a', '<': 'a'},
  {'>': 'ab', '<': 'abc'}, {'>': '', '<': 'b'}, {'>': 'a', '<': ''}, {'>': '1', '<': '9'},
  {'>': '\ue000'}, {'<': '\ue000'}, {'>': '\ud83d\ude00'}, {'<': '\ud83d\ude00'},
  {'>': '\ue000', '<': '\uffff'}, {'>': '\ud800', '<': '\udfff'},
  {'=': 'a', '*': 'b'}, {'=': 'b', '*': 'a'}, {'*': 'a', '>': 'c'}, {'*': 'c', '>': 'a'},
  {'*': 'a', '<': 'c'}, {'*': 'a', '>': 'a', '<': 'b'}, {'=': '', '*': 'a'}, {'*': '', '>': 'a'},
  {'*': '', '>': ''}, {'=': 'a', '>': 'b'}, {'.': 'a'}, {'#': 'a'}, {'-': true, '>': 'a'},
  {'>': 'a', '<': 'b', '-': 1}, {'%': 10, '*': 'a'},
];
// Non-string operands: String.match does JS comparisons, so these coerce (numbers compare
// numerically against the key, arrays and objects compare as their toString). Only SEA
// certificates can carry such lex (the certificate's "w"); wire GETs use strings.
const oddLex = [
  {'=': 1}, {'*': 1}, {'>': 5}, {'<': 5}, {'>': 1, '<': 9}, {'>': '1', '<': 9}, {'>': 0},
  {'<': 0}, {'>': null}, {'<': null}, {'>': true}, {'<': false}, {'>': ['a']}, {'<': ['b', 'c']},
  {'>': {}}, {'<': {}}, {'=': null}, {'*': null}, {'=': false}, {'*': 0}, {'>': 'a', '<': null},
  5, 0, null, true, ['a'],
];

const vectors = [];
for (const key of keys) {
  for (const lex of stringLex) vectors.push({key, lex, match: String.match(key, lex)});
  for (const lex of objLex) vectors.push({key, lex, match: String.match(key, lex)});
  for (const lex of oddLex) vectors.push({key, lex, match: String.match(key, lex), note: 'non-string lex operand'});
}
// a non-string key never matches
for (const lex of ['a', {'*': ''}, {'>': ''}, {}]) {
  vectors.push({key: null, lex, match: String.match(null, lex), note: 'non-string key'});
  vectors.push({key: 5, lex, match: String.match(5, lex), note: 'non-string key'});
}
writeVectors('lex.json', vectors);
