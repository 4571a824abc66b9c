'use strict';
// A do-almost-nothing GUN wire endpoint used only to calibrate the load generator
// (`bench/run.py --calibrate`): it shows how many acks/s and gets/s bench/load.js can drive when
// the server costs next to nothing. It is not a relay: no storage, no subscriptions, no forwarding.
// Usage: node bench/null_relay.js PORT   (prints "null relay listening on http://127.0.0.1:PORT/gun")
const http = require('http');
const WebSocket = require('ws');
const port = parseInt(process.argv[2] || '0', 10);
const graph = new Map();
let n = 0;
const rid = () => 'n' + (++n).toString(36).padStart(11, '0');
const server = http.createServer((req, res) => { res.writeHead(200); res.end('ok'); });
const wss = new WebSocket.Server({ server, path: '/gun', perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.send(JSON.stringify({ '#': rid(), dam: '?', pid: 'nullrelay' }));
  const one = (m) => {
    if (!m || m.dam) return;
    if (m.put && m['@'] === undefined) {
      for (const soul in m.put) graph.set(soul, m.put[soul]);
      ws.send(JSON.stringify({ '#': rid(), '@': m['#'], ok: true }));
    } else if (m.get) {
      const soul = m.get['#'];
      const node = graph.get(soul);
      ws.send(JSON.stringify(node ? { '#': rid(), '@': m['#'], put: { [soul]: node } } : { '#': rid(), '@': m['#'] }));
    }
  };
  ws.on('message', (d) => {
    let m; try { m = JSON.parse(d); } catch (e) { return; }
    if (Array.isArray(m)) m.forEach(one); else one(m);
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log('null relay listening on http://127.0.0.1:' + server.address().port + '/gun');
});
