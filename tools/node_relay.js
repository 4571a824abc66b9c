// The reference GunJS relay (npm gun 0.2020.1241, default storage RAD, AXE on), for side-by-side
// benchmarks and for checking that interop scripts behave the same against both relays.
// Usage: node tools/node_relay.js PORT DATA_DIR
process.env.MULTICAST = 'false';
const path = require('path');
const http = require('http');
const Gun = require('gun');
const port = parseInt(process.argv[2] || '8765', 10);
const file = process.argv[3] || path.join(process.cwd(), 'radata-node-relay');
const server = http.createServer(Gun.serve(__dirname)).listen(port, '127.0.0.1', () => {
  console.log('node relay listening on http://127.0.0.1:' + server.address().port + '/gun');
});
Gun({web: server, file: file, multicast: false});
