// gunrelay operator console: plain JS over the JSON API under /-/api/ (docs/console-api.md).
// Served with a strict CSP: no inline code or styles. Every server-provided string is
// attacker-influenced, so it only ever reaches the page through textContent / attributes.
'use strict';

(() => {
  const PAGES = ['dashboard', 'peers', 'mesh', 'bans', 'resets', 'namespaces', 'snapshots', 'audit', 'logs'];
  const AUDIT_PER_PAGE = 50;
  const LOG_LIMIT = 500;
  const WATCH_EXTRA_MS = 5 * 60 * 1000; // keep polling a reset at most this long after the ack wait, for its purge
  const CHART_WINDOW_MS = 10 * 60 * 1000;

  const state = {
    csrf: null,
    user: null,
    privacy: false,
    loggedIn: false,
    page: null,
    pollGen: 0,
    pollTimer: null,
    auditPage: 1,
    auditPages: 1,
    previewOk: false,
    watch: null, // {id, cancelled}
    displayedReset: null,
    ownPub: null, // this relay's pub (GET /-/identity), to tell its own resets from another relay's
    logsSig: '',
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ formatting

  const nfInt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nfOne = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

  function isNum(v) {
    return typeof v === 'number' && Number.isFinite(v);
  }

  function fmtInt(v) {
    return isNum(v) ? nfInt.format(v) : '—';
  }

  function fmtNum(v) {
    if (!isNum(v)) return '—';
    return Math.abs(v) >= 100 || Number.isInteger(v) ? nfInt.format(v) : nfOne.format(v);
  }

  function fmtRate(v) {
    if (!isNum(v)) return '—';
    return (Math.abs(v) >= 1000 ? nfInt.format(v) : nfOne.format(v)) + '/s';
  }

  function fmtBytes(v) {
    if (!isNum(v)) return '—';
    const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
    let x = Math.abs(v);
    let i = 0;
    while (x >= 1024 && i < units.length - 1) {
      x /= 1024;
      i += 1;
    }
    const sign = v < 0 ? '-' : '';
    if (i === 0) return sign + nfInt.format(Math.round(x)) + ' B';
    return sign + (x < 100 ? x.toFixed(1) : x.toFixed(0)) + ' ' + units[i];
  }

  function fmtByteRate(v) {
    return isNum(v) ? fmtBytes(v) + '/s' : '—';
  }

  // 3725 -> "1h 2m"; at most two units, whole seconds.
  function fmtDuration(seconds, maxUnits = 2) {
    if (!isNum(seconds)) return '—';
    let s = Math.max(0, Math.round(seconds));
    if (s === 0) return '0s';
    const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
    const parts = [];
    for (const [name, size] of units) {
      if (s >= size) {
        parts.push(Math.floor(s / size) + name);
        s %= size;
      } else if (parts.length) {
        parts.push(null); // a skipped unit still counts, so "1d 0h 5m" reads "1d"
      }
      if (parts.length >= maxUnits) break;
    }
    return parts.filter(Boolean).join(' ');
  }

  function fmtRelative(ms) {
    if (!isNum(ms)) return '';
    const diff = ms - Date.now();
    if (Math.abs(diff) < 5000) return 'just now';
    const text = fmtDuration(Math.abs(diff) / 1000);
    return diff < 0 ? text + ' ago' : 'in ' + text;
  }

  const dateFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function fmtDate(ms) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '—' : dateFmt.format(d);
  }

  function fmtTime(ms) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '—' : timeFmt.format(d);
  }

  function isoOf(ms) {
    if (!isNum(ms)) return '';
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? '' : d.toISOString();
  }

  function str(v) {
    if (v === null || v === undefined || v === '') return '—';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    try {
      return JSON.stringify(v);
    } catch (e) {
      return String(v);
    }
  }

  function yesNo(v) {
    return v ? 'yes' : 'no';
  }

  function count(v) {
    if (Array.isArray(v)) return v.length;
    return isNum(v) ? v : null;
  }

  // ------------------------------------------------------------------ DOM helpers

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k === 'title') node.title = v;
        else if (k === 'type') node.type = v;
        else if (k === 'onclick') node.addEventListener('click', v);
        else if (k === 'style') throw new Error('no inline styles');
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function setText(node, text, title) {
    const t = text === undefined || text === null ? '' : String(text);
    if (node.textContent !== t) node.textContent = t;
    if (title !== undefined) {
      const ti = title || '';
      if (node.title !== ti) node.title = ti;
    }
  }

  // A time cell: absolute local time, with the relative time after it.
  function setTimeCell(td, ms, { relative = true, empty = '—' } = {}) {
    if (!isNum(ms)) {
      if (td.textContent !== empty) td.replaceChildren(document.createTextNode(empty));
      td.title = '';
      return;
    }
    let abs = td.querySelector('.abs');
    let rel = td.querySelector('.rel');
    if (!abs) {
      abs = h('span', { class: 'abs' });
      rel = h('span', { class: 'rel' });
      td.replaceChildren(abs, rel);
    }
    setText(abs, fmtDate(ms));
    setText(rel, relative ? fmtRelative(ms) : '');
    td.title = isoOf(ms);
  }

  function emptyRow(text, colspan) {
    return h('tr', { class: 'empty' }, h('td', { colspan: String(colspan) }, text));
  }

  // Keyed table update: rows are reused (so buttons under the pointer survive a refresh),
  // created for new keys, removed for vanished ones, and kept in the order of `items`.
  function syncRows(tbody, items, { keyAttr, keyOf, build, update, emptyText, colspan }) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) {
      const k = tr.getAttribute(keyAttr);
      if (k === null) tr.remove();
      else existing.set(k, tr);
    }
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const key = String(keyOf(item));
      if (seen.has(key)) continue;
      seen.add(key);
      let tr = existing.get(key);
      if (!tr) {
        tr = document.createElement('tr');
        tr.setAttribute(keyAttr, key);
        build(tr, key, item);
      }
      update(tr, item, key);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (tr !== want) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [k, tr] of existing) if (!seen.has(k)) tr.remove();
    if (!seen.size && emptyText) tbody.append(emptyRow(emptyText, colspan));
  }

  function addCells(tr, n, classes = {}) {
    for (let i = 0; i < n; i += 1) tr.append(h('td', { class: classes[i] }));
  }

  // ------------------------------------------------------------------ toast

  let toastTimer = null;

  function toast(message, kind = 'ok') {
    const t = $('toast');
    t.textContent = message;
    t.className = 'toast show ' + (kind === 'error' ? 'error' : 'ok');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('show'), kind === 'error' ? 9000 : 5000);
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, data, message) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  // Returns the parsed answer of a 2xx; otherwise shows the error (unless quiet) and throws.
  // A 401 outside login sends the operator back to the login form.
  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && method !== 'HEAD' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    let res;
    try {
      res = await fetch('/-/api/' + path, init);
    } catch (e) {
      const err = new ApiError(0, null, 'Network error: the relay did not answer.');
      if (!opts.quiet) toast(err.message, 'error');
      throw err;
    }
    let data = null;
    let text = '';
    try {
      text = await res.text();
    } catch (e) {
      text = '';
    }
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (res.ok) return data && typeof data === 'object' ? data : {};
    let message = data && typeof data.error === 'string' && data.error ? data.error : ('HTTP ' + res.status + ' ' + (res.statusText || '')).trim();
    if (res.status === 429 && data && data.retry_after_s !== undefined && data.retry_after_s !== null) {
      const ra = Number(data.retry_after_s);
      message += ' (retry after ' + (Number.isFinite(ra) && !Number.isInteger(ra) ? Math.ceil(ra) : String(data.retry_after_s)) + ' s)';
    }
    const err = new ApiError(res.status, data, message);
    if (res.status === 401 && !opts.noAuthRedirect) {
      if (state.loggedIn) {
        showLogin('Your session has ended: please sign in again.');
        toast('Session ended: ' + message, 'error');
      }
      throw err;
    }
    if (!opts.quiet) toast(message, 'error');
    throw err;
  }

  const enc = encodeURIComponent;

  // Run an action with its button disabled; errors were already shown by api().
  async function withBusy(button, fn) {
    if (button && button.disabled) return undefined;
    if (button) {
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
    }
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ApiError)) {
        toast(String(e && e.message ? e.message : e), 'error');
        console.error(e);
      }
      return undefined;
    } finally {
      if (button) {
        button.disabled = false;
        button.removeAttribute('aria-busy');
      }
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ------------------------------------------------------------------ session

  function showLogin(message) {
    state.loggedIn = false;
    state.csrf = null;
    stopPolling();
    if (state.watch) state.watch.cancelled = true;
    state.watch = null;
    $('booting').hidden = true;
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('login-password').value = '';
    $('login-submit').disabled = false;
    const focus = $('login-user').value ? $('login-password') : $('login-user');
    try {
      focus.focus();
    } catch (e) {
      /* ignore */
    }
  }

  function enterApp(session) {
    state.csrf = session.csrf || null;
    state.user = session.user || 'admin';
    state.privacy = !!session.privacy;
    state.loggedIn = true;
    setText($('whoami'), state.user);
    const exp = Number(session.expires);
    if (Number.isFinite(exp) && exp > 0) {
      const ms = exp > 1e11 ? exp : exp * 1000; // seconds or milliseconds since the epoch
      $('whoami').title = 'Session expires ' + fmtDate(ms);
    }
    $('privacy').checked = state.privacy;
    $('login-error').textContent = '';
    $('booting').hidden = true;
    $('login').hidden = true;
    $('app').hidden = false;
    route();
  }

  async function boot() {
    try {
      const session = await api('GET', 'session', undefined, { noAuthRedirect: true, quiet: true });
      enterApp(session);
    } catch (e) {
      showLogin(e.status === 401 ? '' : e.message);
    }
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const button = $('login-submit');
    if (button.disabled) return;
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    if (!user || !password) {
      $('login-error').textContent = 'Enter the user and the password.';
      return;
    }
    $('login-error').textContent = '';
    button.disabled = true;
    try {
      const session = await api('POST', 'login', { user, password }, { noAuthRedirect: true, quiet: true });
      $('login-password').value = '';
      enterApp(session);
      toast('Signed in as ' + (session.user || user) + '.');
    } catch (e) {
      $('login-error').textContent = e.message;
      toast(e.message, 'error');
      $('login-password').select();
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    await withBusy($('logout'), async () => {
      try {
        await api('POST', 'logout', {}, { noAuthRedirect: true });
      } catch (e) {
        if (e.status !== 401) throw e; // already logged out server-side is fine
      }
      showLogin('');
      toast('Logged out.');
    });
  }

  async function onPrivacy() {
    const box = $('privacy');
    const want = box.checked;
    box.disabled = true;
    try {
      const res = await api('POST', 'privacy', { enabled: want });
      state.privacy = typeof res.privacy === 'boolean' ? res.privacy : want;
      box.checked = state.privacy;
      toast(state.privacy ? 'Privacy mode on: addresses are anonymised.' : 'Privacy mode off.');
      refreshCurrent();
    } catch (e) {
      box.checked = state.privacy;
    } finally {
      box.disabled = false;
    }
  }

  // ------------------------------------------------------------------ navigation and polling

  function stopPolling() {
    state.pollGen += 1;
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  // Calls fn now and then every intervalMs after each answer, until the page changes.
  function startPolling(fn, intervalMs) {
    stopPolling();
    const gen = state.pollGen;
    const tick = async () => {
      if (gen !== state.pollGen || !state.loggedIn) return;
      try {
        await fn();
      } catch (e) {
        /* shown by api() */
      }
      if (gen !== state.pollGen || !state.loggedIn) return;
      state.pollTimer = setTimeout(tick, intervalMs);
    };
    tick();
  }

  // Errors were already shown by api(): never leave a rejected promise unhandled.
  const settle = (...promises) => {
    for (const p of promises) if (p && typeof p.catch === 'function') p.catch(() => {});
  };

  const pages = {
    dashboard: { enter: () => startPolling(loadStats, 2000), refresh: () => settle(loadStats()) },
    peers: { enter: () => startPolling(loadPeers, 2000), refresh: () => settle(loadPeers()) },
    mesh: { enter: () => startPolling(loadMesh, 2000), refresh: () => settle(loadMesh()) },
    bans: { enter: () => startPolling(loadBans, 5000), refresh: () => settle(loadBans()) },
    resets: { enter: () => startPolling(loadResets, 5000), refresh: () => settle(loadResets()) },
    namespaces: { enter: () => settle(loadNamespaces(), loadTtl()), refresh: () => settle(loadNamespaces(), loadTtl()) },
    snapshots: { enter: () => settle(loadSnapshots()), refresh: () => settle(loadSnapshots()) },
    audit: { enter: () => settle(loadAudit(1)), refresh: () => settle(loadAudit(state.auditPage)) },
    logs: { enter: () => startPolling(loadLogs, 3000), refresh: () => settle(loadLogs()) },
  };

  function route() {
    if (!state.loggedIn) return;
    let name = (location.hash || '').replace(/^#/, '');
    if (!PAGES.includes(name)) name = 'dashboard';
    showPage(name);
  }

  function showPage(name) {
    stopPolling();
    state.page = name;
    for (const p of PAGES) $('page-' + p).hidden = p !== name;
    for (const a of document.querySelectorAll('.nav a')) {
      const on = a.getAttribute('href') === '#' + name;
      a.classList.toggle('active', on);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const active = document.querySelector('.nav a.active');
    if (active && active.scrollIntoView) active.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    document.title = 'gunrelay · ' + name;
    pages[name].enter();
  }

  function refreshCurrent() {
    if (state.loggedIn && state.page) pages[state.page].refresh();
  }

  // Drops answers that arrive after a newer request of the same loader.
  function latest(fn) {
    let seq = 0;
    return async (...args) => {
      seq += 1;
      const mine = seq;
      return fn(() => mine === seq, ...args);
    };
  }

  // ------------------------------------------------------------------ dashboard

  function setStat(id, raw, text) {
    const node = $(id);
    if (!node) return;
    setText(node, text);
    const v = raw === null || raw === undefined ? '' : String(raw);
    if (node.getAttribute('data-value') !== v) node.setAttribute('data-value', v);
  }

  function setSub(id, text) {
    const node = $(id);
    if (node) setText(node, text);
  }

  const loadStats = latest(async (isLatest) => {
    const s = await api('GET', 'stats');
    if (!isLatest()) return;
    const totals = s.totals || {};
    const rates = s.rates || {};
    const store = s.store || {};
    setStat('stat-connections', s.connections, fmtInt(s.connections));
    setStat('stat-peak-connections', s.peak_connections, fmtInt(s.peak_connections));
    setStat('stat-messages-in', rates.messages_in, fmtRate(rates.messages_in));
    setStat('stat-messages-out', rates.messages_out, fmtRate(rates.messages_out));
    setStat('stat-bytes-in', rates.bytes_in, fmtByteRate(rates.bytes_in));
    setStat('stat-bytes-out', rates.bytes_out, fmtByteRate(rates.bytes_out));
    setStat('stat-puts', rates.puts, fmtRate(rates.puts));
    setStat('stat-gets', rates.gets, fmtRate(rates.gets));
    setStat('stat-total-puts', totals.puts, fmtInt(totals.puts));
    setStat('stat-total-gets', totals.gets, fmtInt(totals.gets));
    setStat('stat-total-acks', totals.acks, fmtInt(totals.acks));
    setStat('stat-total-errors', totals.errors, fmtInt(totals.errors));
    setStat('stat-fenced-writes', totals.fenced_writes, fmtInt(totals.fenced_writes));
    setStat('stat-souls', store.souls, fmtInt(store.souls));
    setStat('stat-fields', store.fields, fmtInt(store.fields));
    setStat('stat-store-bytes', store.bytes, fmtBytes(store.bytes));
    setStat('stat-resets', s.resets, fmtInt(s.resets));
    setStat('stat-bans', s.bans, fmtInt(s.bans));
    setStat('stat-uptime', s.uptime_s, fmtDuration(s.uptime_s, 3));
    setSub('stat-total-messages-in', isNum(totals.messages_in) ? 'total ' + fmtInt(totals.messages_in) : '');
    setSub('stat-total-messages-out', isNum(totals.messages_out) ? 'total ' + fmtInt(totals.messages_out) : '');
    setSub('stat-total-bytes-in', isNum(totals.bytes_in) ? 'total ' + fmtBytes(totals.bytes_in) : '');
    setSub('stat-total-bytes-out', isNum(totals.bytes_out) ? 'total ' + fmtBytes(totals.bytes_out) : '');
    setSub('stat-total-refused', isNum(totals.refused) ? 'refused ' + fmtInt(totals.refused) : '');
    setText($('stats-updated'), 'updated ' + fmtTime(isNum(s.at) ? s.at : Date.now()));
    showFleet(s.fleet, isNum(s.at) ? s.at : Date.now());
    drawCharts(Array.isArray(s.history) ? s.history : [], s.at);
  });

  // The fleet (--storage postgres: several processes on one store): every live process from its
  // heartbeat, and the fleet-wide totals. Without a fleet: "single process", nothing else.
  function showFleet(fleet, at) {
    const single = !fleet || typeof fleet !== 'object';
    if ($('fleet-single').hidden !== !single) $('fleet-single').hidden = !single;
    if ($('fleet-view').hidden !== single) $('fleet-view').hidden = single;
    if (single) return;
    const totals = fleet.totals || {};
    setStat('fleet-total-processes', totals.processes, fmtInt(totals.processes));
    setStat('fleet-total-connections', totals.connections, fmtInt(totals.connections));
    setStat('fleet-total-messages-in', totals.messages_in, fmtInt(totals.messages_in));
    setStat('fleet-total-messages-out', totals.messages_out, fmtInt(totals.messages_out));
    const processes = Array.isArray(fleet.processes) ? fleet.processes.filter((p) => p && typeof p === 'object') : [];
    syncRows($('fleet-table').tBodies[0], processes, {
      keyAttr: 'data-process',
      keyOf: (p) => p.process_id,
      colspan: 8,
      emptyText: 'No process has a recent heartbeat.',
      build: (tr) => addCells(tr, 8, { 0: 'mono', 2: 'num', 5: 'num', 6: 'num', 7: 'num' }),
      update: (tr, p) => {
        const c = tr.cells;
        let pid = c[0].querySelector('.pid');
        if (!pid) {
          pid = h('span', { class: 'pid' });
          c[0].replaceChildren(pid, h('span', { class: 'badge badge-ok this-process', text: 'this process' }));
        }
        setText(pid, str(p.pid));
        c[0].querySelector('.this-process').hidden = p.this !== true;
        tr.classList.toggle('this-process-row', p.this === true);
        tr.setAttribute('data-pid', String(p.pid));
        setText(c[1], str(p.host));
        setText(c[2], str(p.port));
        setTimeCell(c[3], p.started);
        const age = isNum(p.last_seen) ? Math.max(0, at - p.last_seen) / 1000 : null;
        setText(c[4], age === null ? '—' : nfOne.format(age) + ' s ago', fmtDate(p.last_seen));
        setText(c[5], fmtInt(p.control_version));
        setText(c[6], fmtInt(p.connections));
        setText(c[7], fmtInt(p.messages_in) + ' / ' + fmtInt(p.messages_out));
      },
    });
  }

  const CHARTS = [
    { id: 'connections', title: 'Connections', fmt: fmtNum, series: [{ key: 'connections', label: 'connections' }] },
    { id: 'messages', title: 'Messages per second', fmt: fmtRate, series: [{ key: 'messages_in', label: 'in' }, { key: 'messages_out', label: 'out' }] },
    { id: 'ops', title: 'Puts and gets per second', fmt: fmtRate, series: [{ key: 'puts', label: 'puts' }, { key: 'gets', label: 'gets' }] },
    { id: 'bytes', title: 'Bytes per second', fmt: fmtByteRate, series: [{ key: 'bytes_in', label: 'in' }, { key: 'bytes_out', label: 'out' }] },
  ];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const VB_W = 300;
  const VB_H = 100;

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
    return 10 * exp;
  }

  function buildCharts() {
    const box = $('charts');
    if (box.childElementCount) return;
    for (const c of CHARTS) {
      const legend = h('div', { class: 'chart-legend' });
      for (const [i, s] of c.series.entries()) {
        legend.append(h('span', { class: 'legend-item' },
          h('span', { class: 'swatch series-' + i, 'aria-hidden': 'true' }),
          h('span', { class: 'legend-label', text: s.label }),
          h('span', { class: 'legend-value', id: 'chart-' + c.id + '-' + s.key, text: '—' })));
      }
      const plot = svg('svg', { viewBox: `0 0 ${VB_W} ${VB_H}`, preserveAspectRatio: 'none', class: 'chart-svg', role: 'img', 'aria-label': c.title });
      for (const y of [0, VB_H / 2, VB_H]) {
        plot.append(svg('line', { x1: 0, x2: VB_W, y1: y, y2: y, class: 'grid', 'vector-effect': 'non-scaling-stroke' }));
      }
      for (const [i] of c.series.entries()) {
        plot.append(svg('path', { class: 'area series-' + i, d: '' }));
      }
      for (const [i] of c.series.entries()) {
        plot.append(svg('polyline', { class: 'line series-' + i, points: '', fill: 'none', 'vector-effect': 'non-scaling-stroke' }));
      }
      const fig = h('figure', { class: 'chart card', id: 'chart-' + c.id },
        h('figcaption', { text: c.title }),
        legend,
        h('div', { class: 'chart-plot' },
          h('span', { class: 'chart-max', id: 'chart-' + c.id + '-max', text: '' }),
          plot),
        h('div', { class: 'chart-axis', 'aria-hidden': 'true' }, h('span', { text: '−10 min' }), h('span', { text: '−5 min' }), h('span', { text: 'now' })));
      box.append(fig);
    }
  }

  function drawCharts(history, at) {
    buildCharts();
    const points = history.filter((p) => p && isNum(p.t));
    const tEnd = points.length ? points[points.length - 1].t : (isNum(at) ? at : Date.now());
    const tStart = tEnd - CHART_WINDOW_MS;
    const visible = points.filter((p) => p.t >= tStart);
    const xOf = (t) => ((t - tStart) / CHART_WINDOW_MS) * VB_W;
    for (const c of CHARTS) {
      let max = 0;
      for (const p of visible) for (const s of c.series) if (isNum(p[s.key]) && p[s.key] > max) max = p[s.key];
      const top = niceMax(max);
      const yOf = (v) => VB_H - (Math.max(0, v) / top) * (VB_H - 4);
      const fig = $('chart-' + c.id);
      setText($('chart-' + c.id + '-max'), c.fmt(top));
      for (const [i, s] of c.series.entries()) {
        const pts = visible.filter((p) => isNum(p[s.key])).map((p) => [xOf(p.t), yOf(p[s.key])]);
        if (pts.length === 1) pts.unshift([Math.max(0, pts[0][0] - 2), pts[0][1]]);
        const line = fig.querySelector('polyline.series-' + i);
        const area = fig.querySelector('path.series-' + i);
        line.setAttribute('points', pts.map(([x, y]) => x.toFixed(2) + ',' + y.toFixed(2)).join(' '));
        if (pts.length >= 2) {
          const d = 'M' + pts[0][0].toFixed(2) + ',' + VB_H + ' ' + pts.map(([x, y]) => 'L' + x.toFixed(2) + ',' + y.toFixed(2)).join(' ') +
            ' L' + pts[pts.length - 1][0].toFixed(2) + ',' + VB_H + ' Z';
          area.setAttribute('d', d);
        } else {
          area.setAttribute('d', '');
        }
        const last = visible.length ? visible[visible.length - 1][s.key] : null;
        setText($('chart-' + c.id + '-' + s.key), c.fmt(last));
      }
    }
  }

  // ------------------------------------------------------------------ peers

  const loadPeers = latest(async (isLatest) => {
    const data = await api('GET', 'peers');
    if (!isLatest()) return;
    const peers = Array.isArray(data.peers) ? data.peers : [];
    setText($('peers-count'), peers.length === 1 ? '1 peer connected' : fmtInt(peers.length) + ' peers connected');
    syncRows($('peers-table').tBodies[0], peers, {
      keyAttr: 'data-peer-id',
      keyOf: (p) => p.id,
      colspan: 8,
      emptyText: 'No peer is connected.',
      build: (tr, key) => {
        addCells(tr, 7, { 0: 'mono', 1: 'mono', 2: 'mono', 4: 'num', 5: 'num' });
        tr.append(h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'kick small', text: 'Kick', title: 'Close this peer\'s connection', onclick: () => kickPeer(key) }),
          h('button', { type: 'button', class: 'ban small danger', text: 'Ban', title: 'Ban this peer\'s address', onclick: () => banPeer(key) })));
      },
      update: (tr, p) => {
        const c = tr.cells;
        setText(c[0], str(p.id));
        setText(c[1], str(p.address));
        setText(c[2], str(p.pid));
        setText(c[3], fmtRelative(p.since), fmtDate(p.since));
        setText(c[4], fmtInt(p.messages_in) + ' / ' + fmtInt(p.messages_out));
        const subs = count(p.subscriptions);
        setText(c[5], subs === null ? str(p.subscriptions) : fmtInt(subs));
        const ack = p.last_ack;
        if (ack && typeof ack === 'object') setText(c[6], str(ack.reset_id) + (isNum(ack.at) ? ' · ' + fmtRelative(ack.at) : ''), fmtDate(ack.at));
        else setText(c[6], '—', '');
        tr.dataset.address = typeof p.address === 'string' ? p.address : '';
      },
    });
  });

  // ------------------------------------------------------------------ mesh

  // This relay's own pub, from the public GET /-/identity (outside /-/api/); asked once.
  async function ownPub() {
    if (state.ownPub) return state.ownPub;
    try {
      const res = await fetch('/-/identity', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      const data = res.ok ? await res.json() : null;
      if (data && typeof data.pub === 'string' && data.pub) state.ownPub = data.pub;
    } catch (e) {
      /* the pub is a nicety here: the pages work without it */
    }
    return state.ownPub;
  }

  // A relay pub (87 characters) shown as its start and end; the whole value is in the title.
  function shortPub(pub) {
    if (typeof pub !== 'string' || !pub) return '—';
    return pub.length > 20 ? pub.slice(0, 10) + '…' + pub.slice(-6) : pub;
  }

  // Shown shortened; the whole pub is in the title (pointer) and in hidden text (screen readers).
  function setPub(node, pub) {
    const v = typeof pub === 'string' ? pub : '';
    if (node.getAttribute('data-pub') === v && node.firstElementChild) return;
    node.setAttribute('data-pub', v);
    node.title = v;
    if (!v) {
      node.replaceChildren(document.createTextNode('—'));
      return;
    }
    node.replaceChildren(
      h('span', { class: 'pub-short', 'aria-hidden': 'true', text: shortPub(v) }),
      h('span', { class: 'sr-only', text: v }));
  }

  const LINK_STATES = {
    up: 'Linked: writes, gets and resets flow both ways',
    connecting: 'Dialling or greeting the other relay',
    down: 'Not linked: redialled with a growing wait (0.5 s up to 30 s)',
    covered: 'Another link already joins these two relays: this one stays closed',
    self: 'This URL leads back to this relay: the link stays closed',
  };

  function setStateBadge(td, linkState) {
    const name = Object.prototype.hasOwnProperty.call(LINK_STATES, linkState) ? linkState : 'unknown';
    let badge = td.firstElementChild;
    if (!badge) {
      badge = h('span');
      td.replaceChildren(badge);
    }
    const cls = 'badge link-state state-' + name;
    if (badge.className !== cls) badge.className = cls;
    setText(badge, str(linkState), LINK_STATES[name] || '');
    td.setAttribute('data-state', String(linkState));
  }

  function streamText(stream) {
    if (!stream || typeof stream !== 'object') return ['—', 'No change stream read from this relay (its pub is not known yet, or it is a Node GUN relay)'];
    const pos = 'position ' + fmtInt(stream.cursor);
    return [pos + (stream.caught_up ? ' · caught up' : ' · catching up'), stream.caught_up
      ? 'This relay has read the other relay\'s change stream up to its end'
      : 'This relay is still reading the other relay\'s change stream'];
  }

  function setStream(td, stream) {
    const [text, title] = streamText(stream);
    setText(td, text, title);
    const v = stream && typeof stream === 'object' ? (stream.caught_up ? 'caught-up' : 'behind') : 'none';
    if (td.getAttribute('data-stream') !== v) td.setAttribute('data-stream', v);
  }

  function countLine(n, one, many) {
    return n === 1 ? one : fmtInt(n) + ' ' + many;
  }

  const loadMesh = latest(async (isLatest) => {
    const [data, pub] = await Promise.all([api('GET', 'mesh'), ownPub()]);
    if (!isLatest()) return;
    setText($('mesh-pid'), str(data.pid));
    setPub($('mesh-pub'), pub);
    setText($('mesh-updated'), 'updated ' + fmtTime(Date.now()));
    const dialled = Array.isArray(data.dialled) ? data.dialled : [];
    const inbound = Array.isArray(data.inbound) ? data.inbound : [];
    const upCount = dialled.filter((l) => l && l.state === 'up').length;
    setText($('mesh-dialled-count'), dialled.length
      ? countLine(dialled.length, '1 link', 'links') + ', ' + fmtInt(upCount) + ' up'
      : '');
    syncRows($('mesh-dialled-table').tBodies[0], dialled, {
      keyAttr: 'data-url',
      keyOf: (l) => l.url,
      colspan: 9,
      build: (tr) => addCells(tr, 9, { 0: 'mono wrap-any', 3: 'mono', 4: 'mono', 6: 'num', 7: 'num', 8: 'wrap' }),
      update: (tr, l) => {
        const c = tr.cells;
        setText(c[0], str(l.url));
        setStateBadge(c[1], l.state);
        setText(c[2], fmtRelative(l.since) || '—', fmtDate(l.since));
        setText(c[3], str(l.pid));
        setPub(c[4], l.relay);
        setStream(c[5], l.stream);
        setText(c[6], fmtInt(l.failures));
        setText(c[7], fmtInt(l.messages_in) + ' / ' + fmtInt(l.messages_out));
        setText(c[8], l.last_error ? str(l.last_error) : '—');
        c[8].classList.toggle('error-text', !!l.last_error && l.state !== 'up');
      },
    });
    showWhenEmpty('mesh-dialled', dialled.length === 0);
    setText($('mesh-inbound-count'), inbound.length ? countLine(inbound.length, '1 relay linked in', 'relays linked in') : '');
    syncRows($('mesh-inbound-table').tBodies[0], inbound, {
      keyAttr: 'data-inbound',
      keyOf: (l) => [l.relay || '', l.pid || '', l.address || '', l.since].join('|'),
      colspan: 6,
      build: (tr) => addCells(tr, 6, { 0: 'mono', 1: 'mono', 2: 'mono', 5: 'num' }),
      update: (tr, l) => {
        const c = tr.cells;
        setText(c[0], str(l.address));
        setText(c[1], str(l.pid));
        setPub(c[2], l.relay);
        setText(c[3], fmtRelative(l.since) || '—', fmtDate(l.since));
        setStream(c[4], l.stream);
        setText(c[5], fmtInt(l.messages_in));
      },
    });
    setText($('mesh-own-host'), location.host);
    showWhenEmpty('mesh-inbound', inbound.length === 0);
  });

  // An empty table gives way to its explanation (a paragraph, which wraps at any width).
  function showWhenEmpty(prefix, empty) {
    if ($(prefix + '-empty').hidden !== !empty) $(prefix + '-empty').hidden = !empty;
    if ($(prefix + '-wrap').hidden !== empty) $(prefix + '-wrap').hidden = empty;
  }

  function peerLabel(id) {
    const tr = document.querySelector('#peers-table tr[data-peer-id="' + CSS.escape(id) + '"]');
    const addr = tr && tr.dataset.address;
    return addr ? 'peer ' + id + ' (' + addr + ')' : 'peer ' + id;
  }

  function rowButton(tr, cls) {
    return tr ? tr.querySelector('button.' + cls) : null;
  }

  async function kickPeer(id) {
    if (!window.confirm('Kick ' + peerLabel(id) + '? Its connection is closed; it may reconnect.')) return;
    const tr = document.querySelector('#peers-table tr[data-peer-id="' + CSS.escape(id) + '"]');
    await withBusy(rowButton(tr, 'kick'), async () => {
      await api('POST', 'peers/' + enc(id) + '/kick', {});
      toast('Kicked peer ' + id + '.');
    });
    loadPeers().catch(() => {});
  }

  async function banPeer(id) {
    const duration = $('peer-ban-duration').value.trim() || '10m';
    if (!window.confirm('Ban ' + peerLabel(id) + ' for ' + duration + '? Its address is banned and its sockets closed.')) return;
    const tr = document.querySelector('#peers-table tr[data-peer-id="' + CSS.escape(id) + '"]');
    await withBusy(rowButton(tr, 'ban'), async () => {
      const res = await api('POST', 'peers/' + enc(id) + '/ban', { duration, reason: 'console' });
      toast('Banned ' + describeBans(res.banned) + ' for ' + duration + '.');
    });
    loadPeers().catch(() => {});
  }

  function describeBans(list) {
    if (!Array.isArray(list) || !list.length) return 'no address';
    const addrs = list.map((b) => str(b && b.address));
    return addrs.length <= 3 ? addrs.join(', ') : addrs.slice(0, 3).join(', ') + ' and ' + (addrs.length - 3) + ' more';
  }

  // ------------------------------------------------------------------ bans

  const loadBans = latest(async (isLatest) => {
    const data = await api('GET', 'bans');
    if (!isLatest()) return;
    const bans = Array.isArray(data.bans) ? data.bans : [];
    syncRows($('bans-table').tBodies[0], bans, {
      keyAttr: 'data-address',
      keyOf: (b) => b.address,
      colspan: 4,
      emptyText: 'Nobody is banned.',
      build: (tr, key) => {
        addCells(tr, 3, { 0: 'mono', 2: 'wrap' });
        tr.append(h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'unban small', text: 'Unban', onclick: () => unban(key, tr) })));
      },
      update: (tr, b) => {
        setText(tr.cells[0], str(b.address));
        if (b.until === null || b.until === undefined) setText(tr.cells[1], 'permanent', '');
        else setTimeCell(tr.cells[1], isNum(b.until) ? b.until * 1000 : NaN);
        setText(tr.cells[2], str(b.reason));
      },
    });
  });

  async function unban(address, tr) {
    await withBusy(rowButton(tr, 'unban'), async () => {
      await api('DELETE', 'bans/' + enc(address));
      toast('Unbanned ' + address + '.');
    });
    loadBans().catch(() => {});
  }

  async function onBanSubmit(ev) {
    ev.preventDefault();
    const address = $('ban-address').value.trim();
    const duration = $('ban-duration').value.trim() || '1h';
    const reason = $('ban-reason').value.trim();
    if (!address) {
      toast('Give the address to ban.', 'error');
      $('ban-address').focus();
      return;
    }
    await withBusy($('ban-submit'), async () => {
      const res = await api('POST', 'bans', { address, duration, reason });
      toast('Banned ' + describeBans(res.banned) + ' for ' + duration + '.');
      $('ban-address').value = '';
    });
    loadBans().catch(() => {});
  }

  async function onBanConnected() {
    const duration = $('ban-duration').value.trim() || '1h';
    const reason = $('ban-reason').value.trim();
    if (!window.confirm('Ban the address of EVERY connected peer for ' + duration + '? All of them are disconnected.')) return;
    await withBusy($('ban-connected'), async () => {
      const body = { connected: true, duration };
      if (reason) body.reason = reason;
      const res = await api('POST', 'bans', body);
      const n = Array.isArray(res.banned) ? res.banned.length : 0;
      toast(n ? 'Banned ' + n + ' connected address' + (n === 1 ? '' : 'es') + ' for ' + duration + '.' : 'No peer was connected: nobody banned.');
    });
    loadBans().catch(() => {});
  }

  // ------------------------------------------------------------------ resets

  function keepList() {
    return $('reset-keep').value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  }

  function resetBody() {
    return {
      scope: $('reset-scope').value.trim() || '*',
      reason: $('reset-reason').value.trim(),
      message: $('reset-message').value.trim(),
      keep: keepList(),
    };
  }

  function resetFormSignature() {
    const f = $('reset-form');
    return Array.from(f.querySelectorAll('input, select, textarea')).map((i) => (i.type === 'checkbox' ? String(i.checked) : i.value)).join('\u0000');
  }

  let previewSignature = null;

  function invalidatePreview() {
    if (!state.previewOk) return;
    state.previewOk = false;
    previewSignature = null;
    $('reset-confirm').disabled = true;
    const box = $('reset-preview-result');
    box.classList.add('stale');
    let note = box.querySelector('.stale-note');
    if (!note && box.childElementCount) {
      note = h('p', { class: 'stale-note', text: 'The form changed: preview again before issuing.' });
      box.prepend(note);
    }
  }

  function kv(label, value, id, raw, cls) {
    const dd = h('dd', { id, text: value });
    if (raw !== undefined && raw !== null) dd.setAttribute('data-value', String(raw));
    return h('div', { class: cls }, h('dt', { text: label }), dd);
  }

  function watermarkText(record) {
    const w = record.W !== undefined ? record.W : record.watermark;
    if (w === 'Infinity' || w === Infinity) return '∞ (rotation)';
    return str(w);
  }

  function renderPreview(res) {
    const box = $('reset-preview-result');
    box.classList.remove('stale');
    const rec = res.record || {};
    const wr = res.would_remove || {};
    const notify = count(res.peers_to_notify);
    const keep = Array.isArray(rec.keep) ? rec.keep : [];
    const parts = [
      h('h4', { text: 'Preview: nothing has been changed yet' }),
      h('dl', { class: 'kv' },
        kv('Scope', str(rec.scope), 'reset-preview-scope'),
        kv('W (watermark)', watermarkText(rec), 'reset-preview-w', undefined, 'span2'),
        kv('Would remove souls', fmtInt(wr.souls), 'reset-preview-souls', wr.souls),
        kv('Would remove fields', fmtInt(wr.fields), 'reset-preview-fields', wr.fields),
        kv('Would remove bytes', fmtBytes(wr.bytes), 'reset-preview-bytes', wr.bytes),
        kv('Reachable souls fenced', fmtInt(res.reachable_souls_fenced), 'reset-preview-fenced', res.reachable_souls_fenced),
        kv('Peers to notify', notify === null ? str(res.peers_to_notify) : fmtInt(notify), 'reset-preview-peers', notify)),
    ];
    if (keep.length) parts.push(h('p', { class: 'small', text: 'Kept keys: ' + keep.map(str).join(', ') }));
    box.replaceChildren(...parts);
  }

  async function onResetPreview(ev) {
    if (ev) ev.preventDefault();
    const wait = Number($('reset-wait-acks').value);
    if ($('reset-wait-acks').value.trim() !== '' && !(Number.isFinite(wait) && wait >= 0)) {
      toast('"Watch acks" must be a number of seconds, 0 or more.', 'error');
      return;
    }
    const signature = resetFormSignature();
    await withBusy($('reset-preview'), async () => {
      const res = await api('POST', 'resets', Object.assign(resetBody(), { dry_run: true }));
      renderPreview(res);
      if (resetFormSignature() === signature) {
        state.previewOk = true;
        previewSignature = signature;
        $('reset-confirm').disabled = false;
        toast('Preview ready: check it, then issue the reset.');
      } else {
        state.previewOk = true; // so that invalidatePreview() marks it
        invalidatePreview();
      }
    });
  }

  async function onResetConfirm() {
    if (!state.previewOk || previewSignature !== resetFormSignature()) {
      invalidatePreview();
      toast('Preview the reset first.', 'error');
      return;
    }
    const body = resetBody();
    const snapshot = $('reset-snapshot').checked;
    const waitRaw = $('reset-wait-acks').value.trim();
    const wait = waitRaw === '' ? 30 : Number(waitRaw);
    const quarantine = $('reset-quarantine').value.trim();
    const question = 'Issue a reset of scope "' + body.scope + '"?\n\n' +
      'Data in scope is fenced and purged; connected peers are told to drop it.' +
      (snapshot ? '\nA snapshot is taken first.' : '\nNO snapshot is taken first.') +
      (quarantine ? '\nPeers still not acknowledging after ' + wait + ' s are banned for ' + quarantine + '.' : '');
    if (!window.confirm(question)) return;
    const button = $('reset-confirm');
    button.disabled = true;
    let res;
    try {
      res = await api('POST', 'resets', Object.assign(body, { dry_run: false, snapshot }));
    } catch (e) {
      button.disabled = !state.previewOk;
      return;
    }
    // One preview, one reset: issuing again needs a fresh preview.
    state.previewOk = false;
    previewSignature = null;
    button.disabled = true;
    const rec = res.record || {};
    const id = rec.reset_id;
    const box = $('reset-preview-result');
    box.classList.add('stale');
    for (const n of box.querySelectorAll('.stale-note')) n.remove();
    box.prepend(h('p', { class: 'stale-note', text: 'Issued as reset ' + str(id) + '. Preview again to issue another one.' }));
    let msg = 'Reset ' + str(id) + ' issued';
    if (res.snapshot && res.snapshot.name) msg += ' after snapshot ' + res.snapshot.name;
    toast(msg + '.');
    loadResets().catch(() => {});
    if (id !== undefined && id !== null) settle(watchReset(String(id), Number.isFinite(wait) && wait >= 0 ? wait : 30, quarantine));
  }

  function clearProgress(id) {
    setText($('reset-progress-id'), id || '—');
    setText($('reset-progress-scope'), '—');
    for (const k of ['reset-acked', 'reset-pending', 'reset-purged']) {
      setText($(k), '—');
      $(k).setAttribute('data-value', '');
    }
    setText($('reset-purge-done'), '—');
    setText($('reset-published'), '—');
    $('reset-pending-list').replaceChildren();
    $('reset-acked-list').replaceChildren();
    $('reset-relays-table').tBodies[0].replaceChildren();
    showWhenEmpty('reset-relays', false);
    $('reset-relays-wrap').hidden = true;
    $('reset-issuer-line').hidden = true;
    setText($('reset-quarantine-result'), '');
  }

  // Per relay of the mesh (by its pub): the fence put up and the purge done for this reset.
  function renderRelayAcks(d) {
    const relays = (Array.isArray(d.relays) ? d.relays : []).filter((r) => r && typeof r.pub === 'string');
    const issuer = typeof d.issuer === 'string' ? d.issuer : '';
    const foreign = !!issuer && !!state.ownPub && issuer !== state.ownPub;
    syncRows($('reset-relays-table').tBodies[0], relays, {
      keyAttr: 'data-pub',
      keyOf: (r) => r.pub,
      colspan: 4,
      build: (tr) => addCells(tr, 4, { 0: 'mono' }),
      update: (tr, r) => {
        const c = tr.cells;
        setPub(c[0], r.pub);
        setText(c[1], yesNo(r.fence_installed));
        c[1].setAttribute('data-value', yesNo(r.fence_installed));
        setText(c[2], yesNo(r.purge_done));
        c[2].setAttribute('data-value', yesNo(r.purge_done));
        setText(c[3], fmtRelative(r.at) || '—', fmtDate(r.at));
      },
    });
    setText($('reset-relays-empty'), foreign
      ? 'Relays report to the relay that issued this reset: open it there to see them.'
      : 'No relay has reported this reset yet: relays started with --trust-relay and this relay\'s pub report here.');
    showWhenEmpty('reset-relays', relays.length === 0);
    $('reset-issuer-line').hidden = !foreign;
    if (foreign) setPub($('reset-issuer'), issuer);
  }

  function peerItem(p, withTime) {
    const parts = [str(p.peer_id)];
    if (p.address) parts.push(str(p.address));
    if (p.pid !== undefined && p.pid !== null && p.pid !== '') parts.push('pid ' + str(p.pid));
    const li = h('li', { 'data-peer-id': str(p.peer_id) }, parts.join(' · '));
    if (withTime && isNum(p.at)) li.append(h('span', { class: 'muted', text: ' · ' + fmtRelative(p.at) }));
    return li;
  }

  function renderProgress(d) {
    const rec = d.record || {};
    const acked = Array.isArray(d.acknowledged) ? d.acknowledged : [];
    const pending = Array.isArray(d.connected_not_acknowledged) ? d.connected_not_acknowledged : [];
    const purge = d.purge || {};
    setText($('reset-progress-id'), str(rec.reset_id));
    setText($('reset-progress-scope'), str(rec.scope) + (rec.kind && rec.kind !== 'reset' ? ' (' + rec.kind + ')' : ''));
    setStat('reset-acked', acked.length, fmtInt(acked.length));
    setStat('reset-pending', pending.length, fmtInt(pending.length));
    setStat('reset-purged', isNum(purge.fields_removed) ? purge.fields_removed : '', fmtInt(purge.fields_removed));
    setText($('reset-purge-done'), purge.done ? 'yes' : 'no');
    if (purge.done && isNum(purge.seconds)) $('reset-purge-done').title = 'took ' + purge.seconds.toFixed(2) + ' s';
    setText($('reset-published'), yesNo(d.published));
    const pl = $('reset-pending-list');
    pl.replaceChildren(...pending.map((p) => peerItem(p, false)));
    if (!pending.length) pl.append(h('li', { class: 'muted none', text: 'none' }));
    const al = $('reset-acked-list');
    al.replaceChildren(...acked.map((p) => peerItem(p, true)));
    if (!acked.length) al.append(h('li', { class: 'muted none', text: 'none' }));
    renderRelayAcks(d);
    $('reset-progress').classList.toggle('done', !!purge.done);
  }

  function watchStatus(id, text) {
    if (state.displayedReset === id) setText($('reset-watch-status'), text);
  }

  async function watchReset(id, waitS, quarantine) {
    if (state.watch) state.watch.cancelled = true;
    const token = { id, cancelled: false };
    state.watch = token;
    state.displayedReset = id;
    clearProgress(id);
    const start = Date.now();
    const waitMs = waitS * 1000;
    const hardStop = start + waitMs + WATCH_EXTRA_MS;
    let quarantined = false;
    let last = null;
    let failures = 0;
    while (!token.cancelled && state.loggedIn) {
      try {
        last = await api('GET', 'resets/' + enc(id), undefined, { quiet: true });
        failures = 0;
        if (!token.cancelled && state.displayedReset === id) renderProgress(last);
      } catch (e) {
        if (e.status === 401 || token.cancelled) return;
        failures += 1;
        watchStatus(id, 'Could not read the reset: ' + e.message);
        if (e.status === 404 || failures >= 30) break;
      }
      const now = Date.now();
      const waitOver = now - start >= waitMs;
      if (waitOver && !quarantined && last) {
        quarantined = true;
        const pending = Array.isArray(last.connected_not_acknowledged) ? last.connected_not_acknowledged : [];
        if (quarantine && pending.length) await quarantineReset(id, quarantine);
        else if (quarantine && state.displayedReset === id) setText($('reset-quarantine-result'), 'No connected peer left unacknowledged: nobody quarantined.');
      }
      const purgeDone = !!(last && last.purge && last.purge.done);
      if (waitOver && purgeDone) {
        watchStatus(id, 'Done: purge complete (watched ' + fmtDuration((now - start) / 1000) + ').');
        break;
      }
      if (now >= hardStop) {
        watchStatus(id, 'Stopped watching after ' + fmtDuration((now - start) / 1000) + '; the purge is still running: open it from the history later.');
        break;
      }
      if (failures === 0) {
        watchStatus(id, waitOver
          ? 'Waiting for the purge to finish…'
          : 'Watching acknowledgements: ' + Math.ceil((waitMs - (now - start)) / 1000) + ' s left.');
      }
      await sleep(1000);
    }
    if (state.watch === token) state.watch = null;
    if (!token.cancelled && state.loggedIn) loadResets().catch(() => {});
  }

  async function quarantineReset(id, duration) {
    try {
      const res = await api('POST', 'resets/' + enc(id) + '/quarantine', { duration });
      const banned = Array.isArray(res.banned) ? res.banned : [];
      const text = banned.length
        ? 'Quarantined for ' + duration + ' (not acknowledged): ' + describeBans(banned) + '.'
        : 'Quarantine: nobody left to ban.';
      if (state.displayedReset === id) setText($('reset-quarantine-result'), text);
      toast(text);
    } catch (e) {
      if (state.displayedReset === id) setText($('reset-quarantine-result'), 'Quarantine failed: ' + e.message);
    }
  }

  async function showResetDetails(id) {
    state.displayedReset = id;
    await ownPub();
    clearProgress(id);
    setText($('reset-watch-status'), 'Loading ' + id + '…');
    try {
      const d = await api('GET', 'resets/' + enc(id));
      if (state.displayedReset !== id) return;
      renderProgress(d);
      const live = state.watch && state.watch.id === id && !state.watch.cancelled;
      setText($('reset-watch-status'), live ? 'Watching live…' : 'Details loaded at ' + fmtTime(Date.now()) + '.');
      for (const tr of $('resets-table').tBodies[0].rows) tr.classList.toggle('selected', tr.getAttribute('data-reset-id') === id);
      $('reset-progress').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    } catch (e) {
      if (state.displayedReset === id) setText($('reset-watch-status'), 'Could not load ' + id + ': ' + e.message);
    }
  }

  const loadResets = latest(async (isLatest) => {
    const data = await api('GET', 'resets');
    if (!isLatest()) return;
    const list = (Array.isArray(data.resets) ? data.resets : []).filter((r) => r && r.record && r.record.reset_id !== undefined);
    list.sort((a, b) => (Number(b.record.issued_at) || 0) - (Number(a.record.issued_at) || 0)); // newest first
    syncRows($('resets-table').tBodies[0], list, {
      keyAttr: 'data-reset-id',
      keyOf: (r) => r.record.reset_id,
      colspan: 10,
      emptyText: 'No reset has been issued.',
      build: (tr, key) => {
        addCells(tr, 9, { 0: 'mono', 2: 'mono', 3: 'num', 5: 'wrap', 6: 'num', 8: 'mono' });
        tr.append(h('td', { class: 'actions' },
          h('button', {
            type: 'button', class: 'details small', text: 'Details',
            onclick: (ev) => { ev.stopPropagation(); showResetDetails(key); },
          })));
        tr.tabIndex = 0;
        tr.addEventListener('click', (ev) => {
          if (ev.target.closest('button, a, input')) return;
          showResetDetails(key);
        });
        tr.addEventListener('keydown', (ev) => {
          if (ev.target === tr && (ev.key === 'Enter' || ev.key === ' ')) {
            ev.preventDefault();
            showResetDetails(key);
          }
        });
      },
      update: (tr, r, key) => {
        const rec = r.record;
        const c = tr.cells;
        setText(c[0], str(rec.reset_id));
        setText(c[1], str(rec.kind || 'reset'));
        c[1].className = 'kind kind-' + String(rec.kind || 'reset').replace(/[^a-z]/gi, '').toLowerCase();
        setText(c[2], str(rec.scope) + (rec.replacement ? ' → ' + rec.replacement : ''));
        setText(c[3], str(rec.epoch));
        setTimeCell(c[4], Number(rec.issued_at), { relative: true });
        setText(c[5], str(rec.reason));
        setText(c[6], fmtInt(r.acknowledgements));
        const purge = r.purge || {};
        setText(c[7], (purge.done ? 'done' : 'pending') + (isNum(purge.fields_removed) ? ' · ' + fmtInt(purge.fields_removed) + ' fields' : ''));
        setText(c[8], r.superseded_by ? str(r.superseded_by) : '—');
        tr.classList.toggle('superseded', !!r.superseded_by);
        tr.classList.toggle('selected', state.displayedReset === key);
      },
    });
  });

  // ------------------------------------------------------------------ namespaces, TTL

  const loadNamespaces = latest(async (isLatest) => {
    const data = await api('GET', 'namespaces');
    if (!isLatest()) return;
    setText($('instance'), str(data.instance));
    const rotations = (Array.isArray(data.rotations) ? data.rotations : []).slice();
    rotations.sort((a, b) => (Number(b.issued_at) || 0) - (Number(a.issued_at) || 0));
    syncRows($('rotations-table').tBodies[0], rotations, {
      keyAttr: 'data-rotation-id',
      keyOf: (r) => (r.reset_id !== undefined ? r.reset_id : r.scope + '→' + r.to),
      colspan: 6,
      emptyText: 'No namespace has been rotated.',
      build: (tr) => addCells(tr, 6, { 0: 'mono', 1: 'mono', 5: 'num' }),
      update: (tr, r) => {
        const c = tr.cells;
        setText(c[0], str(r.scope));
        setText(c[1], str(r.to));
        setTimeCell(c[2], Number(r.issued_at));
        setTimeCell(c[3], r.purge_after === null || r.purge_after === undefined ? NaN : Number(r.purge_after));
        setText(c[4], yesNo(r.purge_done));
        setText(c[5], fmtInt(r.fields_removed));
      },
    });
  });

  const loadTtl = latest(async (isLatest) => {
    const data = await api('GET', 'ttl');
    if (!isLatest()) return;
    setStat('ttl-expired', data.expired_since_start, fmtInt(data.expired_since_start));
    const rules = Array.isArray(data.ttl) ? data.ttl : [];
    syncRows($('ttl-table').tBodies[0], rules, {
      keyAttr: 'data-prefix',
      keyOf: (r) => r.prefix,
      colspan: 3,
      emptyText: 'No TTL rule: data never expires.',
      build: (tr, key) => {
        addCells(tr, 2, { 0: 'mono' });
        tr.append(h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'remove small', text: 'Remove', onclick: () => removeTtl(key, tr) })));
      },
      update: (tr, r) => {
        setText(tr.cells[0], r.prefix === '' ? '(everything)' : str(r.prefix));
        setText(tr.cells[1], fmtDuration(r.ttl_s, 4), isNum(r.ttl_s) ? fmtInt(r.ttl_s) + ' s' : '');
      },
    });
  });

  async function onRotate(ev) {
    ev.preventDefault();
    const scope = $('rotate-scope').value.trim();
    const to = $('rotate-to').value.trim();
    const grace = $('rotate-grace').value.trim() || '1d';
    if (!scope || !to) {
      toast('Give the scope to rotate and the scope that replaces it.', 'error');
      (scope ? $('rotate-to') : $('rotate-scope')).focus();
      return;
    }
    if (!window.confirm('Rotate "' + scope + '" to "' + to + '"?\n\n"' + scope + '" becomes read-only now and is purged after ' + grace + '.')) return;
    await withBusy($('rotate-submit'), async () => {
      const res = await api('POST', 'rotations', {
        scope, to, grace, reason: $('rotate-reason').value.trim(), message: $('rotate-message').value.trim(),
      });
      const rec = res.record || {};
      toast('Rotation ' + str(rec.reset_id) + ' issued: ' + fmtInt(res.reachable_souls_fenced) + ' reachable souls fenced.');
      for (const f of ['rotate-scope', 'rotate-to', 'rotate-reason', 'rotate-message']) $(f).value = '';
    });
    loadNamespaces().catch(() => {});
  }

  async function onTtlSubmit(ev) {
    ev.preventDefault();
    const prefix = $('ttl-prefix').value.trim();
    const ttl = $('ttl-duration').value.trim();
    if (!prefix || !ttl) {
      toast('Give a soul prefix and a TTL such as 7d.', 'error');
      return;
    }
    await withBusy($('ttl-submit'), async () => {
      const res = await api('POST', 'ttl', { prefix, ttl });
      toast('TTL for "' + str(res.prefix !== undefined ? res.prefix : prefix) + '" set to ' + (isNum(res.ttl_s) ? fmtDuration(res.ttl_s, 4) : ttl) + '.');
      $('ttl-prefix').value = '';
      $('ttl-duration').value = '';
    });
    loadTtl().catch(() => {});
  }

  async function removeTtl(prefix, tr) {
    await withBusy(rowButton(tr, 'remove'), async () => {
      await api('DELETE', 'ttl?prefix=' + enc(prefix));
      toast('TTL rule for "' + prefix + '" removed.');
    });
    loadTtl().catch(() => {});
  }

  // ------------------------------------------------------------------ snapshots

  const loadSnapshots = latest(async (isLatest) => {
    const data = await api('GET', 'snapshots');
    if (!isLatest()) return;
    const list = (Array.isArray(data.snapshots) ? data.snapshots : []).slice();
    list.sort((a, b) => (Number(b.created) || 0) - (Number(a.created) || 0));
    syncRows($('snapshots-table').tBodies[0], list, {
      keyAttr: 'data-name',
      keyOf: (s) => s.name,
      colspan: 5,
      emptyText: 'No snapshot yet.',
      build: (tr, key) => {
        addCells(tr, 4, { 0: 'mono', 2: 'num', 3: 'num' });
        tr.append(h('td', { class: 'actions' },
          h('button', { type: 'button', class: 'restore small danger', text: 'Restore…', onclick: () => restoreSnapshot(key, tr) }),
          h('button', { type: 'button', class: 'delete small danger outline', text: 'Delete', onclick: () => deleteSnapshot(key, tr) })));
      },
      update: (tr, s) => {
        setText(tr.cells[0], str(s.name));
        setTimeCell(tr.cells[1], isNum(s.created) ? s.created * 1000 : NaN);
        setText(tr.cells[2], fmtBytes(s.bytes), isNum(s.bytes) ? fmtInt(s.bytes) + ' bytes' : '');
        setText(tr.cells[3], isNum(s.fields) ? fmtInt(s.fields) : '—');
      },
    });
  });

  async function onSnapshotSubmit(ev) {
    ev.preventDefault();
    const label = $('snapshot-label').value.trim();
    await withBusy($('snapshot-submit'), async () => {
      const res = await api('POST', 'snapshots', { label });
      toast('Snapshot ' + str(res.name) + ' taken (' + fmtBytes(res.bytes) + (isNum(res.fields) ? ', ' + fmtInt(res.fields) + ' fields' : '') + ').');
      $('snapshot-label').value = '';
    });
    loadSnapshots().catch(() => {});
  }

  async function restoreSnapshot(name, tr) {
    if (!window.confirm('Restore snapshot "' + name + '"?\n\nThe current data is replaced by the snapshot; resets issued since it are undone and peers are told to resync.')) return;
    await withBusy(rowButton(tr, 'restore'), async () => {
      const res = await api('POST', 'snapshots/' + enc(name) + '/restore', { reason: 'console', message: '' });
      const rid = res && res.record && res.record.reset_id;
      toast('Snapshot ' + name + ' restored' + (rid ? ' (restore ' + rid + ')' : '') + '.');
    });
    loadSnapshots().catch(() => {});
  }

  async function deleteSnapshot(name, tr) {
    if (!window.confirm('Delete snapshot "' + name + '"? This cannot be undone.')) return;
    await withBusy(rowButton(tr, 'delete'), async () => {
      await api('DELETE', 'snapshots/' + enc(name));
      toast('Snapshot ' + name + ' deleted.');
    });
    loadSnapshots().catch(() => {});
  }

  // ------------------------------------------------------------------ audit

  const loadAudit = latest(async (isLatest, page) => {
    const want = Math.max(1, Math.floor(Number(page) || 1));
    const data = await api('GET', 'audit?page=' + want + '&per_page=' + AUDIT_PER_PAGE);
    if (!isLatest()) return;
    const entries = Array.isArray(data.entries) ? data.entries : [];
    const total = isNum(data.total) ? data.total : entries.length;
    const per = isNum(data.per_page) && data.per_page > 0 ? data.per_page : AUDIT_PER_PAGE;
    const pages = Math.max(1, isNum(data.pages) ? data.pages : Math.ceil(total / per));
    const current = isNum(data.page) ? data.page : want;
    state.auditPage = current;
    state.auditPages = pages;
    setText($('audit-page-info'), 'page ' + fmtInt(current) + ' of ' + fmtInt(pages) + ', ' + fmtInt(total) + (total === 1 ? ' entry' : ' entries'));
    $('audit-prev').disabled = current <= 1;
    $('audit-next').disabled = current >= pages;
    const tbody = $('audit-table').tBodies[0];
    const rows = entries.map((e, i) => {
      const outcome = String(e.outcome || '');
      const tr = h('tr', { 'data-audit-id': e.id !== undefined ? String(e.id) : 'i' + i, class: 'outcome-' + outcome.replace(/[^a-z]/gi, '').toLowerCase() },
        h('td', { class: 'nowrap' }),
        h('td', { text: str(e.who) }),
        h('td', { class: 'mono', text: str(e.address) }),
        h('td', { class: 'mono', text: str(e.action) }),
        h('td', { class: 'detail', text: str(e.detail) }),
        h('td', null, h('span', { class: 'badge badge-' + outcome.replace(/[^a-z]/gi, '').toLowerCase(), text: str(e.outcome) })),
        h('td', { class: 'num', text: str(e.status) }));
      setTimeCell(tr.cells[0], Number(e.at), { relative: false });
      return tr;
    });
    tbody.replaceChildren(...rows);
    if (!rows.length) tbody.append(emptyRow('The audit log is empty.', 7));
  });

  // ------------------------------------------------------------------ logs

  const loadLogs = latest(async (isLatest) => {
    const level = $('logs-level').value || 'info';
    const data = await api('GET', 'logs?level=' + enc(level) + '&limit=' + LOG_LIMIT);
    if (!isLatest()) return;
    const records = Array.isArray(data.records) ? data.records : [];
    const lastRec = records[records.length - 1];
    const sig = level + '|' + records.length + '|' + (lastRec ? String(lastRec.at) + '|' + String(lastRec.message) : '');
    if (sig === state.logsSig) return;
    state.logsSig = sig;
    const wrap = $('logs-wrap');
    const atBottom = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 40;
    const first = !$('logs-table').tBodies[0].rows.length || $('logs-table').tBodies[0].rows[0].classList.contains('empty');
    const rows = records.map((r) => {
      const lvl = String(r.level || '').toLowerCase().replace(/[^a-z]/g, '');
      const tr = h('tr', { class: 'lvl-' + lvl },
        h('td', { class: 'nowrap mono', text: fmtTime(Number(r.at)), title: isoOf(Number(r.at)) }),
        h('td', null, h('span', { class: 'badge lvl-badge lvl-' + lvl, text: str(r.level) })),
        h('td', { class: 'mono', text: str(r.logger) }),
        h('td', { class: 'message', text: str(r.message) }));
      return tr;
    });
    const tbody = $('logs-table').tBodies[0];
    tbody.replaceChildren(...rows);
    if (!rows.length) tbody.append(emptyRow('No log record at this level.', 4));
    if (atBottom || first) wrap.scrollTop = wrap.scrollHeight;
  });

  // ------------------------------------------------------------------ wiring

  function init() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('privacy').addEventListener('change', onPrivacy);
    window.addEventListener('hashchange', route);

    $('ban-form').addEventListener('submit', onBanSubmit);
    $('ban-connected').addEventListener('click', onBanConnected);

    const resetForm = $('reset-form');
    resetForm.addEventListener('submit', onResetPreview);
    resetForm.addEventListener('input', invalidatePreview);
    resetForm.addEventListener('change', invalidatePreview);
    $('reset-preview').addEventListener('click', onResetPreview);
    $('reset-confirm').addEventListener('click', onResetConfirm);

    $('rotate-form').addEventListener('submit', onRotate);
    $('ttl-form').addEventListener('submit', onTtlSubmit);
    $('snapshot-form').addEventListener('submit', onSnapshotSubmit);

    $('audit-prev').addEventListener('click', () => {
      if (state.auditPage > 1) loadAudit(state.auditPage - 1).catch(() => {});
    });
    $('audit-next').addEventListener('click', () => {
      if (state.auditPage < state.auditPages) loadAudit(state.auditPage + 1).catch(() => {});
    });

    $('logs-level').addEventListener('change', () => {
      state.logsSig = '';
      if (state.page === 'logs') startPolling(loadLogs, 3000);
    });

    buildCharts();
    boot();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
