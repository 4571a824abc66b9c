/* gunrelay.js: "a reset that sticks" for stock GunJS 0.2020.1241 + SEA, in browsers and Node.
 *
 *   <script src="/gun.js"></script> <script src="/gun/sea.js"></script> <script src="/gunrelay.js"></script>
 *   var gun = Gun({peers: [RELAY + '/gun']});
 *   var resets = gunrelay.install(gun, {relayPub: PUB, keep: ['theme']});   // PUB: GET RELAY/-/identity
 *
 * Theory of operation (docs/client-plugin.md has the long version):
 *
 * - Records. The relay publishes each reset record signed in its own SEA space: the latest at
 *   ~<pub>/reset, every one at ~<pub>/resets/<id>. The plugin uses a record only when read complete
 *   from its own immutable node through gun.user(relayPub), so GunJS's SEA has verified each field.
 *   At start and on every new connection it asks the relay itself (its own get to that peer, not
 *   GUN's local copy) for the latest record and the history (the newest opts.catchUp unseen ones);
 *   later records arrive live through on().
 * - The install mark. gunrelay greets every connection with its state clock ({dam:'?', clock}, also
 *   its answer to our '?'). The first clock this browser hears is stored at once as its mark, before
 *   any record is judged: a record issued (by the relay's clock) after the mark is a reset this
 *   browser lived through; one issued at or before it is history. History is never a reason to clear
 *   the app's storage, notify or reload, however many old records there are and however slow the
 *   first visit was (a record left unhandled when a slow check times out is still history on the
 *   next load: the mark does not move). It is still recorded and acknowledged, and its fence
 *   applies: GUN's own copies lose fields at or below its W in scope, which the relay refuses and no
 *   longer serves (a new visitor has none). A first visit made offline has no mark yet: nothing is
 *   judged until the first contact marks it, so resets issued before that are history too. Only the
 *   relay's clock is compared with the relay's clock: a wrong browser clock changes nothing.
 * - Applying a reset this browser lived through, once per scope and epoch (remembered under the key
 *   'gunrelay' in localStorage, or opts.store {getItem, setItem}; in Node an in-memory store by
 *   default): the fields at or below W in scope go from GUN's memory and its localStorage copy,
 *   queued writes lose them; for '*' also localStorage except kept keys, and sessionStorage; GUN's
 *   IndexedDB databases are deleted. Every live .on() on a cleared soul hears the fields go (null,
 *   the way GUN delivers a delete, only in memory: nothing is stored or sent). Then the plugin
 *   acknowledges ({dam:'reset-ack'}, retried until it answers ok, and repeated on every new
 *   connection) and calls opts.onReset(record, info).
 * - The client fence drops incoming fields at or below an applied reset's W from any peer or local
 *   store. opts.holdReads holds GUN's answers from local storage until the relay has answered the
 *   check (at most holdReads ms), so a stale local copy never reaches the app.
 * No build step, no dependency beyond GunJS + SEA.
 */
(function (factory) {
  var api = factory();
  if (typeof module === 'object' && module.exports) { module.exports = api; }
  if (typeof window !== 'undefined') { window.gunrelay = api; }
}(function () {
  'use strict';

  var STORE_KEY = 'gunrelay';
  var GUN_IDB = ['gun', 'radata', 'radata-mobile'];
  var KINDS = {reset: 1, rotation: 1, restore: 1};
  var inBrowser = typeof window !== 'undefined' && typeof document !== 'undefined';
  var now = function () { return Date.now(); };
  var keys = function (o) { return o && typeof o === 'object' ? Object.keys(o) : []; };

  function later(ms, fn) {  // a timer that never keeps a Node process alive
    var t = setTimeout(fn, ms);
    if (t && t.unref) { t.unref(); }
    return t;
  }

  function bounded(ms, promise, fallback) {
    return new Promise(function (resolve) {
      later(ms, function () { resolve(fallback); });
      promise.then(resolve, function () { resolve(fallback); });
    });
  }

  function inPrefix(soul, prefix) { return soul === prefix || soul.indexOf(prefix + '/') === 0; }

  function webStorage(name) {  // window.localStorage / sessionStorage, or null (Node, privacy modes)
    try { return inBrowser && window[name] ? window[name] : null; } catch (e) { return null; }
  }

  function memoryStore() {
    var data = {};
    return {getItem: function (k) { return k in data ? data[k] : null; }, setItem: function (k, v) { data[k] = String(v); }};
  }

  // ---- local storage helpers (also behind gunrelay.hardReset) --------------------------------------

  function clearWebStorage(keep) {
    var ls = webStorage('localStorage'), ss = webStorage('sessionStorage'), removed = 0;
    if (ls) {
      var names = [];
      for (var i = 0; i < ls.length; i++) { names.push(ls.key(i)); }
      names.forEach(function (k) { if (keep.indexOf(k) < 0) { ls.removeItem(k); removed++; } });
    }
    if (ss) { removed += ss.length; ss.clear(); }
    return removed;
  }

  function deleteDatabases(names, ms) {  // resolves with the existing ones it deleted; never waits past ms
    var idb = inBrowser && window.indexedDB;
    if (!idb) { return Promise.resolve([]); }
    var listed = idb.databases ? bounded(2000, idb.databases().then(function (l) { return l.map(function (d) { return d.name; }); }), null)
      : Promise.resolve(null);
    return listed.then(function (existing) {  // without databases() (older browsers): delete blind, report none
      return deleteNamed(idb, existing ? names.filter(function (n) { return existing.indexOf(n) >= 0; }) : names, ms)
        .then(function (done) { return existing ? done : []; });
    });
  }

  function deleteNamed(idb, names, ms) {
    return Promise.all(names.map(function (name) {
      return bounded(ms || 3000, new Promise(function (resolve) {
        var req;
        try { req = idb.deleteDatabase(name); } catch (e) { return resolve(null); }
        req.onsuccess = function () { resolve(name); };
        req.onerror = function () { resolve(null); };
        // onblocked: the page itself still has it open (GUN's RAD IndexedDB adapter); the browser
        // deletes it once that connection closes (at the reload), so do not wait for it here
        req.onblocked = function () { resolve(name); };
      }), null);
    })).then(function (done) { return done.filter(Boolean); });
  }

  function banner(text) {
    if (!inBrowser) { return; }
    var el = document.getElementById('gunrelay-notice') || document.createElement('div');
    el.id = 'gunrelay-notice';
    el.setAttribute('role', 'status');
    el.setAttribute('aria-live', 'polite');
    el.textContent = text;
    el.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:2147483647;padding:.75em 1em;' +
      'background:#1f2937;color:#fff;font:16px/1.4 system-ui,sans-serif;text-align:center';
    (document.body || document.documentElement).appendChild(el);
  }

  function hardReset(opts) {
    // The old browser-console recipe, done properly: localStorage except opts.keep (and this
    // plugin's own key), sessionStorage, GUN's IndexedDB databases, GUN's memory if opts.gun is
    // given; then a reload in browsers (opts.reload === false to skip it).
    opts = opts || {};
    var keep = [STORE_KEY].concat(opts.keep || []);
    var removed = clearWebStorage(keep);
    if (opts.gun) {
      var root = opts.gun.back(-1)._;
      keys(root.graph).forEach(function (soul) { delete root.graph[soul]; });
      keys(root.next).forEach(function (soul) { root.next[soul].put = undefined; });
    }
    return deleteDatabases(GUN_IDB.concat(opts.idbNames || [])).then(function (dbs) {
      if (inBrowser && opts.reload !== false) { later(opts.reloadDelay || 0, function () { window.location.reload(); }); }
      return {storageKeys: removed, databases: dbs};
    });
  }

  // ---- GunJS internals we rely on ------------------------------------------------------------------

  function prepend(root, tag, fn) {
    // root.on(tag, fn) appends a listener to GUN's event chain (src/onto.js). The 'in' chain starts
    // with GUN's own `universe` (src/root.js), which consumes a put without passing it on; a fence
    // must run before it, so move our listener to the front of the chain.
    var be = root.on(tag, fn), t = be.the;
    if (t.to !== be) {
      t.last = be.back; be.back.to = be.to;
      be.to = t.to; t.to.back = be; be.back = t; t.to = be;
    }
    return be;
  }

  function localStorageDisk(gun, root) {
    // GUN's localStorage adapter (src/localStorage.js) keeps its copy in an object hung on its
    // 'create' listener, lg[opt.prefix], and writes all of it back on its next flush: clearing
    // window.localStorage alone would be undone. Find that object on Gun's 'create' chain.
    var prefix = root.opt.prefix, Gun = gun.constructor, be = ((Gun.tag || {}).create || {}).to;
    if (!prefix || root.opt.localStorage === false) { return null; }
    for (var i = 0; be && i < 99; i++, be = be.to) {
      var f = be.next;
      if (typeof f === 'function' && f[prefix] && typeof f[prefix] === 'object') { return f[prefix]; }
    }
    return null;
  }

  function pruneGraph(graph, drop) {
    // Remove the fields drop(soul, key, value, state) picks from a GUN graph {soul: node}, with their
    // states; a node left without fields goes. Returns how many fields went.
    var n = 0;
    keys(graph).forEach(function (soul) {
      var node = graph[soul], states = node && node._ && node._['>'];
      if (!states) { return; }
      var gone = 0;
      keys(node).forEach(function (key) {
        if (key !== '_' && drop(soul, key, node[key], states[key])) { delete node[key]; delete states[key]; gone++; }
      });
      if (gone && keys(node).length <= 1) { delete graph[soul]; }
      n += gone;
    });
    return n;
  }

  function pruneRaw(raw, drop) {
    // A queued frame (one message or a JSON array of them, src/mesh.js `send`): drop picked fields
    // from its puts; returns the new frame, or null when nothing is left.
    var data;
    try { data = JSON.parse(raw); } catch (e) { return raw; }
    var list = Array.isArray(data) ? data : [data], out = [], n = 0;
    list.forEach(function (m) {
      if (m && m.put && typeof m.put === 'object' && !m['@']) {
        n += pruneGraph(m.put, drop);
        if (!keys(m.put).length) { return; }
      }
      out.push(m);
    });
    if (!n) { return raw; }
    if (!out.length) { return null; }
    return JSON.stringify(Array.isArray(data) ? out : out[0]);
  }

  function forgedInRelaySpace(value) {
    // SEA 0.2020 verifies a value carrying '*' (a writer's pub) against that writer's key, with or
    // without a certificate '+'. The relay never writes either into its own space; anything that
    // does came from a peer trying to forge a record.
    if (typeof value !== 'string' || value.charAt(0) !== '{') { return false; }
    try { var o = JSON.parse(value); return !!o && typeof o === 'object' && ('*' in o || '+' in o); } catch (e) { return false; }
  }

  // ---- the record --------------------------------------------------------------------------------

  function complete(r, id) {
    return !!r && typeof r === 'object' && r.reset_id === id && typeof r.scope === 'string' && r.scope !== '' &&
      typeof r.epoch === 'number' && isFinite(r.epoch) && (typeof r.W === 'number' || r.W === 'Infinity') &&
      typeof r.issued_at === 'number' && KINDS[r.kind] === 1 && typeof r.keep === 'string';
  }

  function normalize(r) {
    var keep;
    try { keep = JSON.parse(r.keep); } catch (e) { keep = []; }
    return {
      reset_id: r.reset_id, scope: r.scope, epoch: r.epoch, W: r.W === 'Infinity' ? Infinity : r.W,
      issued_at: r.issued_at, reason: String(r.reason || ''), message: String(r.message || ''),
      keep: (Array.isArray(keep) ? keep : []).filter(function (k) { return typeof k === 'string'; }),
      replacement: typeof r.replacement === 'string' ? r.replacement : null, kind: r.kind,
      purge_after: typeof r.purge_after === 'number' ? r.purge_after : null,
    };
  }

  // ---- install -----------------------------------------------------------------------------------

  function relayValue(v) {
    // A field of the relay's space as it travels, before SEA unwraps it: '{":": value, "~": sig}'
    // (or 'SEA{...}'). Used only to learn which record ids to fetch; the records themselves are read
    // through gun.user(pub), where SEA has verified them.
    if (typeof v !== 'string') { return v; }
    var text = v.indexOf('SEA{') === 0 ? v.slice(3) : v;
    if (text.charAt(0) !== '{') { return v; }
    try { var o = JSON.parse(text); return o && typeof o === 'object' && ':' in o ? o[':'] : (o && 'm' in o ? o.m : v); } catch (e) { return v; }
  }

  function install(gun, opts) {
    opts = opts || {};
    var pub = opts.relayPub;
    if (typeof pub !== 'string' || pub.split('.').length !== 2) {
      throw new Error("gunrelay.install: opts.relayPub is required (the relay's SEA pub, from GET /-/identity)");
    }
    if (typeof gun.user !== 'function') { throw new Error('gunrelay.install: load SEA (gun/sea.js) first'); }
    var root = gun.back(-1)._, mesh = root.opt.mesh, space = '~' + pub;
    var relay = gun.user(pub);  // root.get('~' + pub): SEA verifies every field read there
    var store = opts.store || webStorage('localStorage') || memoryStore();
    var idbNames = GUN_IDB.concat(opts.idbNames || []);
    var onReset = typeof opts.onReset === 'function' ? opts.onReset : defaultOnReset;
    var catchUp = opts.catchUp === undefined ? 20 : opts.catchUp;
    var checkTimeout = opts.checkTimeout || 5000;
    var holdReads = Math.min(Math.max(+opts.holdReads || 0, 0), 8000);  // GunJS forgets an unanswered get after 9 s

    var saved;
    try { saved = JSON.parse(store.getItem(STORE_KEY) || 'null'); } catch (e) { saved = null; }
    saved = saved && typeof saved === 'object' ? saved : {};
    var st = {mark: typeof saved.mark === 'number' ? saved.mark : null, applied: saved.applied || {},
      seen: saved.seen || [], pending: saved.pending || [], last: saved.last || null};
    if (st.mark === null && saved.since) {
      // written by version 1, which kept no mark: what it applied is the best mark there is (its W is
      // the relay's clock); with nothing applied, the next greeting marks it like a first install
      keys(st.applied).forEach(function (s) {
        var w = st.applied[s].W;
        if (typeof w === 'number' && (st.mark === null || w > st.mark)) { st.mark = w; }
      });
    }
    function save() { try { store.setItem(STORE_KEY, JSON.stringify(st)); } catch (e) { /* full or gone: keep going */ } }
    save();
    var markedResolve, marked = new Promise(function (resolve) { markedResolve = resolve; });
    if (st.mark !== null) { markedResolve(); }

    var isRelaySpace = function (soul) { return soul === space || soul.indexOf(space + '/') === 0; };
    var fences = {};  // scope -> {W, match}: kind 'reset' only (a rotation and a restore stay readable)
    function matcher(scope, extra) {
      if (scope === '*') { return function (soul) { return !isRelaySpace(soul); }; }
      return function (soul) { return inPrefix(soul, scope) || !!(extra && extra[soul]); };
    }
    keys(st.applied).forEach(function (scope) {
      var a = st.applied[scope];
      if (a.kind === 'reset' && !a.unfenced) { fences[scope] = {W: a.W === 'Infinity' ? Infinity : a.W, match: matcher(scope)}; }
    });
    function fenced(soul, state) {
      for (var scope in fences) {
        if (state <= fences[scope].W && fences[scope].match(soul)) { return true; }
      }
      return false;
    }

    var ctl = {
      relayPub: pub, fenced: 0, replacement: null, replacements: {}, ackErrors: {},
      get last() { return st.last; },
      get mark() { return st.mark; },
      get holding() { return holding; },
      applied: function () { return JSON.parse(JSON.stringify(st.applied)); },
      pendingAcks: function () { return st.pending.slice(); },
      check: function () { return check(); },
      stop: stop,
    };
    keys(st.applied).forEach(function (scope) {
      var a = st.applied[scope];
      if (a.kind === 'rotation' && a.replacement) { ctl.replacements[scope] = ctl.replacement = a.replacement; }
    });

    // -- the client-side fence, the relay's answers to our own gets, and held local reads: every
    // incoming put, from any peer or local store, passes here before GUN uses it --
    var rawAsks = {};   // our own gets to a relay peer: message id -> function(reply)
    var holding = holdReads > 0, held = [];
    function fromLocalStore(msg) {  // an answer from GUN's storage adapters (not a peer, not memory)
      var ctx = msg._;
      return !!msg['@'] && !(ctx && (ctx.via || ctx.ram));
    }
    var fenceBe = prepend(root, 'in', function (msg) {
      if (msg && msg['@'] && rawAsks[msg['@']] && msg._ && msg._.via) { rawAsks[msg['@']](msg); }
      var put = msg && msg.put;
      if (put && typeof put === 'object' && !(typeof put['#'] === 'string' && '.' in put)) {
        var n = pruneGraph(put, function (soul, key, value, state) {
          return isRelaySpace(soul) ? forgedInRelaySpace(value) : fenced(soul, state);
        });
        if (n) {
          ctl.fenced += n;
          if (!keys(put).length) {
            if (!msg['@']) { return; }  // a push with nothing left: swallow it
            delete msg.put;             // a reply with nothing left: "not found"
          }
        }
        if (holding && msg.put && fromLocalStore(msg) && !keys(msg.put).every(isRelaySpace)) {
          held.push(msg);  // opts.holdReads: the app's reads of local data wait for the relay's answer
          return;
        }
      }
      this.to.next(msg);
    });
    function release() {
      if (!holding) { return; }
      holding = false;
      var list = held;
      held = [];
      list.forEach(function (msg) { root.on('in', msg); });  // through the fence again: a reset applied meanwhile prunes them
    }

    // -- acknowledgements: {dam:'reset-ack', reset:id}; the relay answers {dam, '@': our #, ok|err} --
    var asked = {}, ackWaiters = {}, retry = null, stopped = false;
    function sendAck(id, peer) {
      if (!mesh || stopped) { return; }
      var msg = {'#': String.random(9), dam: 'reset-ack', reset: id};
      asked[msg['#']] = id;
      later(30000, function () { delete asked[msg['#']]; });
      mesh.say(msg, peer);
    }
    function settleAck(id, err) {
      var i = st.pending.indexOf(id);
      if (i >= 0) { st.pending.splice(i, 1); save(); }
      if (err) { ctl.ackErrors[id] = err; }
      (ackWaiters[id] || []).forEach(function (w) { w(!err); });
      delete ackWaiters[id];
    }
    var heardAck = mesh && mesh.hear['reset-ack'];
    var heardHello = mesh && mesh.hear['?'];
    if (mesh) {
      mesh.hear['reset-ack'] = function (msg, peer) {
        var id = asked[msg['@']];
        if (id === undefined) { return heardAck && heardAck.apply(this, arguments); }
        delete asked[msg['@']];
        if (msg.ok) { settleAck(id, null); } else if (st.pending.indexOf(id) >= 0) { settleAck(id, String(msg.err || 'refused')); }
      };
      // gunrelay greets with its state clock ({dam:'?', pid, clock}) and answers our '?' with it
      mesh.hear['?'] = function (msg, peer) {
        if (!stopped && msg && typeof msg.clock === 'number' && isFinite(msg.clock) && peer) { heardClock(peer, msg.clock); }
        return heardHello && heardHello.apply(this, arguments);
      };
    }
    function retryAcks() {
      retry = null;
      if (stopped || !st.pending.length) { return; }
      st.pending.forEach(function (id) { sendAck(id); });
      retry = later(4000, retryAcks);
    }
    function ackOk(id, ms) {  // resolves true once the relay said ok (false on err or after ms)
      if (st.pending.indexOf(id) < 0) { return Promise.resolve(!ctl.ackErrors[id]); }
      return bounded(ms, new Promise(function (resolve) { (ackWaiters[id] = ackWaiters[id] || []).push(resolve); }), false);
    }

    // -- the install mark: the relay's clock at this browser's first contact --
    var relays = [];  // peers that greeted with a clock: gunrelay relays
    function heardClock(peer, clock) {
      if (st.mark === null) {
        st.mark = clock;  // durable before any record is judged (handle() waits for it)
        save();
        markedResolve();
      }
      if (relays.indexOf(peer) < 0) { relays.push(peer); }
      check();  // a new connection to a relay: what did it publish while we were away?
      askRelay(peer);
    }
    function sayHello(peer) {  // ask for the clock too: the greeting may have come before install()
      if (mesh && !stopped) { mesh.say({dam: '?', pid: root.opt.pid}, peer); }
    }

    // -- every new connection: hold queued writes until the record is checked; repeat our acks --
    var peers = [];
    var hiBe = root.on('hi', function (peer) {
      this.to.next(peer);
      if (stopped) { return; }
      if (peers.indexOf(peer) < 0) { peers.push(peer); }
      // src/mesh.js mesh.hi: root.on('hi', peer) runs just before it sends peer.queue (the frames
      // that failed to send while the socket was still connecting). Take the puts out now.
      var queued = [], rest = [];
      (peer.queue || []).forEach(function (raw) {
        (typeof raw === 'string' && raw.indexOf('"put"') >= 0 ? queued : rest).push(raw);
      });
      if (queued.length) {
        peer.queue = rest;
        bounded(checkTimeout, check(), null).then(function () {
          queued.map(function (raw) { return pruneRaw(raw, dropStale); }).forEach(function (raw) {
            if (!raw) { return; }
            var w = peer.wire;
            if (w && w.readyState === 1) { w.send(raw); } else { (peer.queue = peer.queue || []).push(raw); }
          });
        });
      }
      sayHello(peer);
      keys(st.applied).forEach(function (scope) { sendAck(st.applied[scope].id, peer); });
      st.pending.forEach(function (id) { if (!appliedId(id)) { sendAck(id, peer); } });
    });
    function appliedId(id) { return keys(st.applied).some(function (s) { return st.applied[s].id === id; }); }
    function dropStale(soul, key, value, state) { return fenced(soul, state); }

    // -- reading records -----------------------------------------------------------------------------
    var busy = {}, chain = Promise.resolve(), checking = null, waiting = [];
    function fetchRecord(id) {  // from its own node ~<pub>/resets/<id>, complete or not at all
      return new Promise(function (resolve) {
        var tries = 0;
        (function attempt() {
          var done = false;
          var give = function () { if (done) { return; } done = true; if (++tries >= 6) { return resolve(null); } later(200 * tries, attempt); };
          later(2000, give);
          relay.get('resets').get(id).once(function (r) {
            if (done) { return; }
            if (complete(r, id)) { done = true; return resolve(normalize(r)); }
            give();
          });
        }());
      });
    }
    function consider(id) {  // resolves once the record with this id is cleared (or found unusable)
      if (typeof id !== 'string' || !id || stopped) { return Promise.resolve(); }
      if (busy[id]) { return busy[id]; }
      if (st.seen.indexOf(id) >= 0) { return Promise.resolve(); }
      var done = function () { delete busy[id]; };
      busy[id] = fetchRecord(id).then(function (rec) {
        var run = function () { return rec ? handle(rec) : null; };
        chain = chain.then(run, run);  // one at a time, in arrival order
        return chain;
      }).then(done, done);
      return busy[id];
    }
    function remember(id) {
      if (st.seen.indexOf(id) < 0) { st.seen.push(id); if (st.seen.length > 500) { st.seen.splice(0, st.seen.length - 500); } }
    }
    function handle(rec) {
      return marked.then(function () {  // nothing is judged before the install mark exists
        var prev = st.applied[rec.scope];
        remember(rec.reset_id);
        if (stopped || (prev && prev.epoch >= rec.epoch) || (opts.maxAge && rec.issued_at < now() - opts.maxAge)) {
          save();  // a replay, an older epoch, or too old to matter: nothing to do
          return null;
        }
        // issued after this browser's first contact with the relay (both by the relay's clock): a
        // reset this browser lived through. Before it: history, never a reason to clear or notify.
        return apply(rec, rec.issued_at > st.mark);
      });
    }
    function rawGet(peer, soul, onReply) {  // our own get to one relay peer; its first reply resolves
      return new Promise(function (resolve) {
        var id = String.random(9), first = true;
        rawAsks[id] = function (msg) {
          onReply(msg.put && msg.put[soul]);
          if (first) { first = false; resolve(true); }
        };
        later(checkTimeout + 2000, function () { delete rawAsks[id]; resolve(false); });
        mesh.say({'#': id, get: {'#': soul}}, peer);
      });
    }
    function askRelay(peer) {
      // The check proper: the relay's own answer (not GUN's local copy) names its latest record and
      // its history; the records are then read, verified, through gun.user(pub).
      if (!waiting.length || peer.gunrelayAsking || !mesh) { return; }
      peer.gunrelayAsking = true;
      var waits = [];
      var latest = rawGet(peer, space + '/reset', function (node) {
        if (node) { waits.push(consider(relayValue(node.reset_id))); }
      });
      var history = rawGet(peer, space + '/resets', function (node) {
        keys(node).filter(function (k) { return k !== '_' && st.seen.indexOf(k) < 0; }).sort()
          .slice(-catchUp).forEach(function (k) { waits.push(consider(k)); });
      });
      Promise.all([latest, history]).then(function (answered) {
        peer.gunrelayAsking = false;
        if (!answered[0] || !answered[1]) { return; }  // no answer in time: the next connection asks again
        Promise.all(waits).then(function () {
          var list = waiting;
          waiting = [];
          list.forEach(function (resolve) { resolve(); });
        });
      });
    }
    function check() {  // resolves once a relay has answered and what it named is cleared (bounded)
      if (checking) { return checking; }
      var answered = new Promise(function (resolve) { waiting.push(resolve); });
      relays.filter(function (p) { return p.wire && root.opt.peers[p.id] === p; }).forEach(askRelay);
      checking = bounded(checkTimeout, answered, null).then(function () { checking = null; });
      return checking;
    }

    // -- applying a record ---------------------------------------------------------------------------
    function closure(scope, graphs) {  // the souls reachable from the prefix (set() items have random souls)
      var seen = {}, todo = [];
      graphs.forEach(function (g) {
        keys(g).forEach(function (s) { if (inPrefix(s, scope) && !seen[s]) { seen[s] = 1; todo.push(s); } });
      });
      for (var i = 0; todo.length && i < 100000; i++) {
        var soul = todo.pop();
        graphs.forEach(function (g) {
          var node = g[soul];
          keys(node).forEach(function (k) {
            var v = node[k], link = k !== '_' && v && typeof v === 'object' && v['#'];
            if (typeof link === 'string' && !seen[link] && !isRelaySpace(link)) { seen[link] = 1; todo.push(link); }
          });
        });
      }
      return seen;
    }
    function clearMemory(drop) {
      // GUN's graph and the chains' cached copies (src/chain.js `at.put`) lose the fields. Returns
      // what went, for tellViews.
      var gone = [], had = {};
      pruneGraph(root.graph, function (soul, key, value, state) {
        if (!drop(soul, key, value, state)) { return false; }
        gone.push({soul: soul, key: key, state: state, link: !!(value && typeof value === 'object')});
        had[soul + '\u0000' + key] = 1;
        return true;
      });
      keys(root.next).forEach(function (soul) {
        var at = root.next[soul], put = at.put;
        if (!put || typeof put !== 'object') { return; }
        var states = (put._ || {})['>'] || {};
        keys(put).forEach(function (k) {
          if (k === '_' || (root.graph[soul] && k in root.graph[soul])) { return; }
          if (!drop(soul, k, put[k], states[k])) { return; }
          if (!had[soul + '\u0000' + k]) { gone.push({soul: soul, key: k, state: states[k], link: !!(put[k] && typeof put[k] === 'object')}); }
          forget(at, k);
        });
      });
      return gone;
    }
    function forget(at, k) {  // a field out of one chain's cache, as if GUN had never seen it
      var put = at.put;
      if (put && typeof put === 'object') {
        delete put[k];
        if (put._ && put._['>']) { delete put._['>'][k]; }
        if (keys(put).length <= 1) { at.put = undefined; }
      }
      if (at.next && at.next[k]) { at.next[k].put = undefined; }
    }
    function tellViews(gone) {
      // Every live .on() on a cleared soul learns it: a null for each cleared field goes down that
      // soul's chain (src/chain.js `input`), the way GUN delivers a delete, but only in memory: not
      // through root.on('in'), so nothing is merged, stored or sent to any peer. Values before
      // relations, so a .map() hears its items' fields go before the items themselves. GUN's input
      // caches the null on the chain; it is taken out again at once, so a later read asks the peers
      // (the relay may serve that field again: a rotation's old scope) instead of a stale null.
      gone.slice().sort(function (a, b) { return a.link - b.link; }).forEach(function (g) {
        var at = (root.next || {})[g.soul];
        if (!at || typeof at.on !== 'function') { return; }
        try {
          at.on('in', {$: at.$, put: {'#': g.soul, '.': g.key, ':': null, '>': typeof g.state === 'number' ? g.state : -Infinity}});
        } catch (e) { later(0, function () { throw e; }); }
        if (!(root.graph[g.soul] && g.key in root.graph[g.soul])) { forget(at, g.key); }
      });
    }
    function apply(rec, isNew) {
      var W = rec.W, disk = localStorageDisk(gun, root);
      var extra = rec.scope === '*' ? null : closure(rec.scope, disk ? [root.graph, disk] : [root.graph]);
      var match = matcher(rec.scope, extra);
      var drop = function (soul, key, value, state) { return !(state > W) && match(soul); };
      var info = {fields: 0, storageKeys: 0, databases: []};
      if (rec.kind === 'reset') { fences[rec.scope] = {W: W, match: match}; } else { delete fences[rec.scope]; }
      if (rec.kind === 'restore') {
        // a restore undoes resets issued after its snapshot, and the relay serves their data again:
        // lift every client fence (the relay's own fences still guard what it stores)
        fences = {};
        keys(st.applied).forEach(function (s) { st.applied[s].unfenced = true; });
      }
      // GUN's own copies (memory, its localStorage copy, queued writes) lose what the relay refuses
      // and no longer serves, also for an old record: the fence applied to what is already here
      var gone = clearMemory(drop);
      info.fields = gone.length;
      if (disk) {
        var n = pruneGraph(disk, drop), ls = webStorage('localStorage');
        info.fields += n;
        if (n && ls && !(isNew && rec.scope === '*')) { try { ls.setItem(root.opt.prefix, JSON.stringify(disk)); } catch (e) { /* full */ } }
      }
      peers.concat(keys(root.opt.peers).map(function (k) { return root.opt.peers[k]; })).forEach(function (peer) {
        if (peer && peer.queue && peer.queue.length) {
          peer.queue = peer.queue.map(function (raw) { return pruneRaw(raw, drop); }).filter(Boolean);
        }
      });
      // the app's own storage, only for a reset this browser lived through
      if (isNew && rec.scope === '*') {
        info.storageKeys = clearWebStorage([STORE_KEY].concat(rec.keep, opts.keep || []));
      }
      st.applied[rec.scope] = {epoch: rec.epoch, W: W === Infinity ? 'Infinity' : W, id: rec.reset_id, kind: rec.kind,
        replacement: rec.replacement};
      if (st.pending.indexOf(rec.reset_id) < 0) { st.pending.push(rec.reset_id); }
      if (isNew) { st.last = {reset_id: rec.reset_id, scope: rec.scope, kind: rec.kind, message: rec.message, reason: rec.reason,
        replacement: rec.replacement, issued_at: rec.issued_at, at: now()}; }
      save();
      if (rec.kind === 'rotation' && rec.replacement) { ctl.replacements[rec.scope] = ctl.replacement = rec.replacement; }
      tellViews(gone);
      return (isNew ? deleteDatabases(idbNames) : Promise.resolve([])).then(function (dbs) {
        info.databases = dbs;
        sendAck(rec.reset_id);
        if (!retry) { retry = later(4000, retryAcks); }
        // cleared: the check (and held reads) go on now; the app hears of it once the relay confirmed
        ackOk(rec.reset_id, opts.ackWait || 3000).then(function (acked) {
          info.acked = acked;
          if (isNew && !stopped) {
            try { onReset(rec, info); } catch (e) { later(0, function () { throw e; }); }
          }
        });
      });
    }
    function defaultOnReset(rec, info) {
      if (!inBrowser) { return; }
      banner(rec.message || 'The relay was reset; reloading.');
      if (info.fields || info.storageKeys || info.databases.length) { later(1500, function () { window.location.reload(); }); }
    }

    // -- redial: GunJS 0.2020 gives up on a peer whose first reconnect attempt fails (src/websocket.js
    // reconnect() returns once mesh 'bye' has deleted it from opt.peers, src/mesh.js), so a browser
    // that was offline for more than ~2 s would never come back to hear the reset. Put the peer back
    // and dial it when it has been missing for two checks in a row.
    var urls = keys(root.opt.peers).filter(function (k) { return root.opt.peers[k].url; }), missing = {};
    function redial() {
      if (stopped) { return; }
      later(3000, redial);
      if (!mesh || typeof mesh.wire !== 'function') { return; }
      urls.forEach(function (url) {
        var p = root.opt.peers[url];
        if (p) { missing[url] = 0; return; }
        missing[url] = (missing[url] || 0) + 1;
        if (missing[url] < 2) { return; }
        missing[url] = 0;
        p = peers.filter(function (x) { return x.url === url; })[0] || {id: url, url: url};
        root.opt.peers[url] = p;
        mesh.wire(p);
      });
    }
    if (opts.redial !== false) { later(3000, redial); }

    // -- start: the relay's answer for the catch-up, on() for what comes next --
    ctl.ready = check();
    if (holding) { bounded(holdReads, ctl.ready, null).then(release); }
    relay.get('reset').on(function (r, key, msg, eve) {
      if (stopped) { eve.off(); return; }
      if (r && r.reset_id) { consider(r.reset_id); }
    });
    keys(root.opt.peers).forEach(function (url) {  // connections GUN opened before install(): ask and ack there too
      var peer = root.opt.peers[url];
      if (!peer.met) { return; }
      peers.push(peer);
      sayHello(peer);
      keys(st.applied).forEach(function (scope) { sendAck(st.applied[scope].id, peer); });
    });
    if (st.pending.length) { retry = later(0, retryAcks); }
    function stop() {
      stopped = true;
      release();
      fenceBe.off(); hiBe.off();
      if (mesh) { mesh.hear['reset-ack'] = heardAck; mesh.hear['?'] = heardHello; }
    }
    return ctl;
  }

  return {install: install, hardReset: hardReset, banner: banner, version: '2'};
}));
