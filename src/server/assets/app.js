// caudal dashboard: hash routing, vanilla DOM, no dependencies.
// Every piece of API text goes into the page through textContent / setAttribute, never innerHTML.
'use strict';
(() => {
  const API = '/api/v1';
  const TOKEN_KEY = 'caudal.token';
  const ANON_KEY = 'caudal.anonymous';
  const FEED_MS = 2000;
  const MAX_FEED_ROWS = 50;
  const MAX_SERIES = 8;
  const MAX_VIOLATION_ROWS = 2000;
  const COLORS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#b8860b', '#56b4e9', '#7f7f7f', '#a0522d'];
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (sel, root = document) => root.querySelector(sel);
  const main = $('#view');
  const tokenForm = $('#token-form');
  const tokenInput = $('#token-input');
  const tokenMsg = $('#token-message');

  // ---------- DOM helpers ----------
  function make(ns, tag, attrs, kids) {
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    return add(node, kids);
  }
  function add(node, kids) {
    for (const kid of [kids].flat(Infinity)) {
      if (kid == null || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }
  const el = (tag, attrs, ...kids) => make(null, tag, attrs, kids);
  const svg = (tag, attrs, ...kids) => make(SVG_NS, tag, attrs, kids);
  const fill = (node, ...kids) => { node.replaceChildren(); return add(node, kids); };
  const loading = () => el('p', { class: 'muted' }, 'Loading…');
  const muted = (text) => el('p', { class: 'muted' }, text);
  const fact = (label, value) => el('div', {}, el('dt', {}, label), el('dd', {}, value));

  function table(attrs, heads, ...body) {
    const th = heads.map((h) => {
      const [label, cls] = Array.isArray(h) ? h : [h, null];
      return el('th', { scope: 'col', class: cls }, label);
    });
    return el('div', { class: 'table-wrap' }, el('table', attrs, el('thead', {}, el('tr', {}, th)), body));
  }

  // ---------- formatting ----------
  const TONES = {
    ok: 'ok', loaded: 'ok', succeeded: 'ok', running: 'info',
    rejected: 'warn', draining: 'warn', missed: 'warn', interrupted: 'warn', degraded: 'warn', pending: 'warn',
    failed: 'bad', error: 'bad', timed_out: 'bad', down: 'bad', unreachable: 'bad', firing: 'bad', failing: 'bad',
    sent: 'ok',
  };
  const GLYPHS = { loaded: '✓', rejected: '⚠', failed: '✗', error: '✗', duplicate: '=', running: '…' };
  const tone = (status) => TONES[status] || 'muted';
  const chip = (status) =>
    el('span', { class: 'chip', 'data-tone': tone(status) }, status == null ? '—' : String(status).replace(/_/g, ' '));

  function fmtNum(n) {
    if (n == null || n === '') return '—';
    return typeof n === 'number' ? n.toLocaleString(undefined, { maximumFractionDigits: 4 }) : String(n);
  }
  function fmtCompact(n) {
    try {
      return new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 2 }).format(n);
    } catch {
      return String(+n.toPrecision(3));
    }
  }
  function fmtDur(ms) {
    if (ms == null) return '—';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }
  function fmtSize(b) {
    if (b == null) return '—';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return `${i ? b.toFixed(1) : b} ${units[i]}`;
  }
  function fmtUptime(s) {
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
  }
  function fmtTime(s) {
    const d = new Date(s);
    if (isNaN(d)) return String(s);
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }
  const timeEl = (s) => (s ? el('time', { datetime: s, title: s }, fmtTime(s)) : '—');
  // A wall-clock time as written (the job's own zone): "2026-11-26 06:00 +01:00", or a bare date.
  function fmtWall(s) {
    if (!s) return '—';
    const m = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/.exec(s);
    if (!m) return String(s);
    return m[2] === '00:00' ? m[1] : `${m[1]} ${m[2]}${m[3] ? ' ' + m[3] : ''}`;
  }
  const fmtPeriod = (a, b) => (a || b
    ? [el('span', { class: 'nowrap' }, fmtWall(a)), ' ', el('span', { class: 'nowrap' }, `→ ${fmtWall(b)}`)] : '—');
  const baseName = (p) => String(p || '').split(/[\\/]/).pop();
  const deliveryHref = (id) => `#/deliveries/${encodeURIComponent(id)}`;
  function fmtAny(v) {
    if (v == null) return '—';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  }

  // ---------- storage ----------
  const store = {
    get(area, key) {
      try { return window[area].getItem(key); } catch { return null; }
    },
    set(area, key, value) {
      try {
        if (value == null) window[area].removeItem(key);
        else window[area].setItem(key, value);
      } catch { /* storage disabled: the token lasts until the page is closed */ }
    },
  };
  const getToken = () => store.get('localStorage', TOKEN_KEY);

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }
  const isAuth = (e) => e instanceof ApiError && e.status === 401;

  async function api(path, { method = 'GET', body, auth = true, anyStatus = false } = {}) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (auth && token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 20000);
    let res;
    try {
      res = await fetch(API + path, {
        method, headers, cache: 'no-store', signal: ctrl.signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'network', e.name === 'AbortError'
        ? 'The server did not answer in time.' : 'Cannot reach the caudal server.');
    } finally {
      clearTimeout(timer);
    }
    const text = await res.text().catch(() => '');
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok && !anyStatus) {
      const err = (data && data.error) || {};
      const e = new ApiError(res.status, err.code || `http_${res.status}`,
        err.message || `The server answered ${res.status} ${res.statusText}`.trim());
      if (res.status === 401 && auth) showTokenForm(e.message);
      throw e;
    }
    return data;
  }

  function errorBox(e, retry) {
    const detail = e instanceof ApiError && e.status ? ` (${e.status} ${e.code})` : '';
    return el('div', { class: 'error', role: 'alert' },
      el('p', {}, (e && e.message) || String(e), el('span', { class: 'small' }, detail)),
      retry ? el('button', { type: 'button', class: 'secondary', onclick: () => retry() }, 'Retry') : null);
  }

  // ---------- view lifecycle: each route bumps `gen`, which stops the previous view's polling ----------
  const view = { gen: 0, timers: new Set(), onHealth: null };
  function stopView() {
    view.gen++;
    view.timers.forEach(clearTimeout);
    view.timers.clear();
    view.onHealth = null;
  }
  function later(ms, fn) {
    const gen = view.gen;
    const id = setTimeout(() => { view.timers.delete(id); if (gen === view.gen) fn(); }, ms);
    view.timers.add(id);
  }
  // Run fn now and again every ms (after it finishes) while the view lives; fn returns false to stop.
  function every(ms, fn) {
    const gen = view.gen;
    const tick = async () => {
      if (gen !== view.gen) return;
      let again = true;
      try { again = (await fn()) !== false; } catch (e) { again = !isAuth(e); }
      if (again && gen === view.gen) later(document.hidden ? ms * 4 : ms, tick);
    };
    tick();
  }
  function mount(title, nodes, heading = true) {
    document.title = title ? `${title} · caudal` : 'caudal';
    fill(main, heading ? el('h1', {}, title) : null, nodes);
  }

  // ---------- token form ----------
  function showTokenForm(message) {
    stopView();
    const wasHidden = tokenForm.hidden;
    tokenMsg.textContent = message || '';
    tokenMsg.hidden = !message;
    tokenForm.hidden = false;
    main.hidden = true;
    if (wasHidden) { tokenInput.value = ''; tokenInput.focus(); }
  }
  function hideTokenForm() {
    tokenForm.hidden = true;
    main.hidden = false;
    updateSignOut();
    refreshAlerts();
    route();
  }
  function updateSignOut() {
    $('#sign-out').textContent = getToken() ? 'Sign out' : 'Sign in';
  }
  tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = tokenInput.value.trim().replace(/^bearer\s+/i, '');
    if (!token) {
      tokenMsg.textContent = 'Paste a token first, or continue without one.';
      tokenMsg.hidden = false;
      tokenInput.focus();
      return;
    }
    store.set('localStorage', TOKEN_KEY, token);
    store.set('sessionStorage', ANON_KEY, null);
    hideTokenForm();
  });
  $('#token-skip').addEventListener('click', () => {
    store.set('localStorage', TOKEN_KEY, null);
    store.set('sessionStorage', ANON_KEY, '1');
    hideTokenForm();
  });
  $('#sign-out').addEventListener('click', () => {
    const had = getToken();
    store.set('localStorage', TOKEN_KEY, null);
    store.set('sessionStorage', ANON_KEY, null);
    updateSignOut();
    showTokenForm(had ? 'Signed out: the token was removed from this browser.' : '');
  });

  // ---------- health badge (no token needed) ----------
  let lastHealth = null;
  async function refreshHealth() {
    let h = null;
    try { h = await api('/health', { auth: false, anyStatus: true }); } catch { h = null; }
    const status = (h && h.status) || 'unreachable';
    lastHealth = h && typeof h === 'object' ? h : { status, components: [] };
    const comps = Array.isArray(lastHealth.components) ? lastHealth.components : [];
    const bad = comps.filter((c) => c.status !== 'ok').map((c) => `${c.name}: ${c.status}`);
    const badge = $('#health');
    badge.setAttribute('data-status', status);
    badge.setAttribute('data-tone', tone(status));
    badge.textContent = status;
    badge.title = bad.length ? bad.join('\n') : status === 'ok' ? 'All components are ok' : status;
    badge.setAttribute('aria-label', `Health: ${status}${bad.length ? ` (${bad.join(', ')})` : ''}`);
    if (view.onHealth) view.onHealth(lastHealth);
  }
  // ---------- firing alerts: a banner on every page ----------
  async function refreshAlerts() {
    let list = null;
    try { list = await api('/alerts', { anyStatus: true }); } catch { list = null; }
    const banner = $('#alert-banner');
    const firing = Array.isArray(list) ? list.filter((a) => a.state === 'firing') : [];
    if (!firing.length) { banner.hidden = true; return; }
    const first = firing[0];
    fill(banner, firing.length === 1
      ? `Alert firing: ${first.name} — ${first.summary || first.rule}`
      : `${firing.length} alerts firing: ${firing.map((a) => a.name).join(', ')}`);
    banner.hidden = false;
  }

  function alertsView() {
    const box = el('div', {}, loading());
    mount('Alerts', [el('section', { class: 'card' }, box)]);
    every(5000, async () => {
      let list;
      try {
        list = await api('/alerts');
      } catch (e) {
        if (!isAuth(e)) fill(box, errorBox(e, () => route()));
        return !isAuth(e);
      }
      refreshAlerts();
      const sig = JSON.stringify(list);
      if (box.sig === sig) return true;
      box.sig = sig;
      if (!Array.isArray(list) || !list.length) {
        fill(box, muted('No alerts are configured. Add [alerts.NAME] and [channels.NAME] to caudal.toml.'));
        return true;
      }
      fill(box, table({ id: 'alerts', class: 'alerts' },
        ['Alert', 'State', 'Since', 'What is wrong', 'Last notices'],
        el('tbody', {}, list.map((a) => el('tr', { 'data-alert': a.name, 'data-state': a.state },
          el('th', { scope: 'row' }, a.name, el('div', { class: 'sub' }, a.rule),
            a.description ? el('div', { class: 'sub' }, a.description) : null),
          el('td', { 'data-label': 'State' }, chip(a.state)),
          el('td', { 'data-label': 'Since' }, timeEl(a.since)),
          el('td', { 'data-label': 'What is wrong' }, a.subjects && a.subjects.length
            ? el('ul', {}, a.subjects.map((s) => el('li', {},
              s.link ? el('a', { href: s.link }, s.name) : el('strong', {}, s.name), `: ${s.detail}`)))
            : el('span', { class: 'muted' }, '—')),
          el('td', { 'data-label': 'Last notices' }, a.last_notifications && a.last_notifications.length
            ? el('ul', {}, a.last_notifications.map((n) => el('li', {},
              el('strong', {}, n.channel), ` ${n.event} `, timeEl(n.created_at), ' ', chip(n.status),
              n.last_error ? el('div', { class: 'error-text' }, n.last_error) : null)))
            : el('span', { class: 'muted' }, `none yet (${(a.notify || []).join(', ')})`)))))));
      return true;
    });
  }

  function renderHealth(box, h) {
    const comps = Array.isArray(h.components) ? h.components : [];
    fill(box,
      el('p', {}, chip(h.status), h.uptime_s != null ? el('span', { class: 'muted' }, ` up ${fmtUptime(h.uptime_s)}`) : null),
      comps.length ? el('ul', { class: 'components' }, comps.map((c) => el('li', {},
        chip(c.status), ' ', el('strong', {}, c.name),
        c.detail ? el('span', { class: 'muted' }, ` — ${c.detail}`) : null))) : null);
  }

  // ---------- overview ----------
  function overview() {
    const healthBox = el('div', {}, loading());
    const pipes = el('div', {}, loading());
    const feedBody = el('tbody');
    const feedErr = el('div');
    const feedNote = muted('Waiting for deliveries…');
    mount('Overview', [
      el('section', { class: 'card' }, el('h2', {}, 'Health'), healthBox),
      el('section', { class: 'card' }, el('h2', {}, 'Pipelines'), pipes),
      el('section', { class: 'card' },
        el('h2', {}, 'Live deliveries ', el('span', { class: 'small muted' }, '(updates every 2 s)')),
        feedErr,
        table({ id: 'feed' }, [['ID', 'num'], 'Pipeline', ['File', 'opt'], 'Status',
          ['Loaded / read', 'num opt'], ['Rejected', 'num opt'], 'Started', ['Duration', 'num opt']], feedBody),
        feedNote),
    ]);
    view.onHealth = (h) => renderHealth(healthBox, h);
    if (lastHealth) renderHealth(healthBox, lastHealth);
    refreshHealth();
    const rows = new Map();
    let tick = 0;
    every(FEED_MS, async () => {
      if (tick++ % 5 === 0) loadPipelines(pipes);
      return loadFeed(feedBody, rows, feedErr, feedNote);
    });
  }

  async function loadPipelines(box) {
    let list;
    try {
      list = await api('/pipelines');
    } catch (e) {
      if (!isAuth(e)) fill(box, errorBox(e, () => loadPipelines(box)));
      return;
    }
    const sig = JSON.stringify(list);
    if (box.sig === sig) return;
    box.sig = sig;
    if (!Array.isArray(list) || !list.length) { fill(box, muted('No pipelines are configured.')); return; }
    fill(box, table({ id: 'pipelines' },
      ['Pipeline', 'Folder', ['Rows today', 'num'], ['Rejects today', 'num'], ['Files waiting', 'num'], 'Last deliveries'],
      el('tbody', {}, list.map((p) => el('tr', { 'data-pipeline': p.name },
        el('th', { scope: 'row' }, p.name,
          p.loads && p.loads.length ? el('div', { class: 'sub' }, `→ ${p.loads.join(', ')}`) : null),
        el('td', { 'data-label': 'Folder' }, el('code', {}, p.folder || '')),
        el('td', { class: 'num', 'data-label': 'Rows today' }, fmtNum(p.rows_today)),
        el('td', { class: p.rejects_today ? 'num warn' : 'num', 'data-label': 'Rejects today' }, fmtNum(p.rejects_today)),
        el('td', { class: 'num', 'data-label': 'Files waiting' }, fmtNum(p.files_waiting)),
        el('td', { 'data-label': 'Last deliveries' }, lastDeliveries(p.last_deliveries)))))));
  }

  function lastDeliveries(list) {
    if (!Array.isArray(list) || !list.length) return el('span', { class: 'muted' }, 'none yet');
    return el('ul', { class: 'chips' }, list.slice(0, 5).map((d) => {
      const label = `Delivery ${d.id}: ${d.status}, ${fmtNum(d.rows_loaded)} rows loaded, ${fmtNum(d.rows_rejected)} rejected`;
      return el('li', {}, el('a', {
        class: 'chip', 'data-tone': tone(d.status), href: deliveryHref(d.id), title: label, 'aria-label': label,
      }, `${GLYPHS[d.status] || '•'} ${d.id}`));
    }));
  }

  async function loadFeed(body, rows, errSlot, note) {
    let page;
    try {
      page = await api('/deliveries?limit=20');
    } catch (e) {
      if (isAuth(e)) return false;
      fill(errSlot, errorBox(e));
      return true;
    }
    errSlot.replaceChildren();
    const items = Array.isArray(page && page.items) ? page.items : [];
    const first = rows.size === 0;
    // Oldest first, each new one prepended: the newest ends on top.
    for (const d of items.slice().reverse()) {
      const sig = JSON.stringify(d);
      const old = rows.get(d.id);
      if (old && old.sig === sig) continue;
      const row = feedRow(d, !first && !old);
      if (old) old.row.replaceWith(row);
      else body.prepend(row);
      rows.set(d.id, { row, sig });
    }
    while (body.rows.length > MAX_FEED_ROWS) {
      const last = body.lastElementChild;
      rows.forEach((v, k) => { if (v.row === last) rows.delete(k); });
      last.remove();
    }
    note.hidden = body.rows.length > 0;
    note.textContent = 'No deliveries yet: drop a file into a pipeline folder.';
    return true;
  }

  function feedRow(d, fresh) {
    return el('tr', { 'data-delivery-id': d.id, class: fresh ? 'fresh' : null },
      el('td', { class: 'num' }, el('a', { class: 'delivery-link', href: deliveryHref(d.id) }, `#${d.id}`)),
      el('td', {}, d.pipeline),
      el('td', { class: 'opt src', title: d.source || '' }, baseName(d.source)),
      el('td', {}, chip(d.status)),
      el('td', { class: 'num opt' }, `${fmtNum(d.rows_loaded)} / ${fmtNum(d.rows_read)}`),
      el('td', { class: d.rows_rejected ? 'num opt warn' : 'num opt' }, fmtNum(d.rows_rejected)),
      el('td', {}, timeEl(d.started_at)),
      el('td', { class: 'num opt' }, fmtDur(d.duration_ms)));
  }

  // ---------- delivery detail ----------
  function deliveryView(id) {
    const head = () => [el('p', {}, el('a', { href: '#/' }, '← Overview')), el('h1', {}, `Delivery ${id}`)];
    const sec = el('section', { id: 'delivery', 'data-delivery-id': id }, head(), loading());
    mount(`Delivery ${id}`, [sec], false);
    every(FEED_MS, async () => {
      try {
        const data = await api(`/deliveries/${encodeURIComponent(id)}`);
        renderDelivery(sec, head, data || {});
        return !!(data && data.delivery && data.delivery.status === 'running');
      } catch (e) {
        if (!isAuth(e)) fill(sec, head(), errorBox(e, () => route()));
        return false;
      }
    });
  }

  function violationsOf(report) {
    if (!report || typeof report !== 'object') return [];
    const v = report.violations;
    const list = Array.isArray(v) ? v
      : v && Array.isArray(v.errors) ? v.errors
        : v && Array.isArray(v.items) ? v.items
          : Array.isArray(report.errors) ? report.errors : [];
    return list.filter((x) => x && typeof x === 'object');
  }

  const V_COLS = [['line', 'Line', 'num'], ['row', 'Row', 'num'], ['column', 'Column'], ['code', 'Code', 'nowrap'],
    ['rule', 'Rule', 'nowrap'], ['value', 'Value'], ['message', 'Message', 'msg']];
  const V_ALWAYS = new Set(['line', 'column', 'code', 'rule', 'value', 'message']);

  function violationColumns(vs) {
    const present = (k) => vs.some((v) => v[k] != null && v[k] !== '');
    const known = new Set([...V_COLS.map((c) => c[0]), 'field']);
    const extra = new Set();
    for (const v of vs) for (const k of Object.keys(v)) if (!known.has(k)) extra.add(k);
    return [...V_COLS.filter(([k]) => V_ALWAYS.has(k) || present(k)),
      ...[...extra].filter(present).map((k) => [k, k])];
  }

  function violationCell(v, key) {
    if (key === 'column') {
      if (v.column != null && v.column !== '') return String(v.column);
      return v.field != null ? `field ${v.field}` : '—';
    }
    if (key === 'line' && v.line == null) return el('span', { class: 'muted' }, 'file');
    if (key === 'value') {
      if (v.value == null) return el('span', { class: 'muted' }, '—');
      if (v.value === '') return el('em', { class: 'muted' }, 'empty');
      return el('code', {}, fmtAny(v.value));
    }
    return v[key] === '' ? '—' : fmtAny(v[key]);
  }

  function renderDelivery(sec, head, data) {
    const d = data.delivery || {};
    const report = data.report && typeof data.report === 'object' ? data.report : null;
    const errors = new Set([d.error,
      report && report.error && (typeof report.error === 'string' ? report.error : report.error.message)]
      .filter(Boolean));
    const facts = [
      ['Status', chip(d.status)], ['Pipeline', d.pipeline], ['File', d.source],
      ['Rows read', fmtNum(d.rows_read)], ['Rows loaded', fmtNum(d.rows_loaded)],
      ['Rows rejected', fmtNum(d.rows_rejected)], ['Size', fmtSize(d.size)],
      ['Started', timeEl(d.started_at)], ['Finished', timeEl(d.finished_at)],
      ['Duration', fmtDur(d.duration_ms)], ['On invalid', report && report.on_invalid],
      ['Duplicate of', report && report.duplicate_of],
      ['Load id', d.load_id && el('code', {}, d.load_id)],
      ['Content hash', d.content_hash && el('code', {}, d.content_hash)],
    ].filter(([, v]) => v != null && v !== '');

    const vs = violationsOf(report);
    const info = report && report.violations && !Array.isArray(report.violations) ? report.violations : {};
    const total = typeof info.total === 'number' ? info.total : vs.length;
    const byRule = info.by_rule && typeof info.by_rule === 'object' ? Object.entries(info.by_rule) : [];
    const cols = violationColumns(vs);
    const tbody = el('tbody');
    const showRows = (n) => fill(tbody, vs.slice(0, n).map((v) =>
      el('tr', {}, cols.map(([k, , cls]) => el('td', { class: cls }, violationCell(v, k))))));
    showRows(MAX_VIOLATION_ROWS);
    const more = vs.length > MAX_VIOLATION_ROWS
      ? el('button', { type: 'button', class: 'secondary', onclick: (e) => { showRows(vs.length); e.target.remove(); } },
        `Show all ${vs.length} violations`) : null;
    const empty = vs.length ? null : el('tfoot', {}, el('tr', {}, el('td', { colspan: cols.length },
      report ? 'No violations recorded.' : 'No quality report is stored for this delivery.')));

    fill(sec, head(),
      el('section', { class: 'card' }, el('dl', { class: 'facts' }, facts.map(([k, v]) => fact(k, v))),
        [...errors].map((m) => el('div', { class: 'error', role: 'alert' }, el('strong', {}, 'Error: '), m))),
      el('section', { class: 'card' },
        el('h2', {}, 'Quality report'),
        el('p', {}, total ? `${fmtNum(total)} violation${total === 1 ? '' : 's'}: the failing rows and why.` : '',
          total > vs.length ? el('span', { class: 'muted' }, ` The report keeps the first ${fmtNum(vs.length)}.`) : null),
        byRule.length ? el('ul', { class: 'chips', 'aria-label': 'Violations by rule' },
          byRule.map(([rule, n]) => el('li', { class: 'chip', 'data-tone': 'warn' }, `${rule}: ${fmtNum(n)}`))) : null,
        table({ id: 'violations' }, cols.map(([, label, cls]) => [label, cls]), tbody, empty),
        more));
  }

  // ---------- jobs ----------
  function jobsView() {
    const list = el('div', { class: 'jobs' }, loading());
    const errSlot = el('div');
    const runsBox = el('div', {}, loading());
    mount('Jobs', [errSlot, list, el('section', { class: 'card' }, el('h2', {}, 'Recent runs'), runsBox)]);
    const refreshRuns = () => loadRuns(runsBox, '', 20);
    every(15000, () => loadJobs(list, errSlot, refreshRuns));
    every(5000, refreshRuns);
  }

  async function loadJobs(list, errSlot, refreshRuns) {
    let jobs;
    try {
      jobs = await api('/jobs');
    } catch (e) {
      if (isAuth(e)) return false;
      fill(errSlot, errorBox(e, () => loadJobs(list, errSlot, refreshRuns)));
      if (!list.querySelector('[data-job]')) list.replaceChildren();
      return true;
    }
    errSlot.replaceChildren();
    if (!Array.isArray(jobs) || !jobs.length) { fill(list, muted('No jobs are configured.')); return true; }
    const cards = [...list.querySelectorAll('[data-job]')];
    const same = cards.length === jobs.length && cards.every((c, i) => c.getAttribute('data-job') === jobs[i].name);
    // Update in place when nothing moved, so a date being typed or a trigger message stays.
    if (same) jobs.forEach((j, i) => jobInfo($('.job-info', cards[i]), j));
    else fill(list, jobs.map((j) => jobCard(j, refreshRuns)));
    return true;
  }

  function jobInfo(box, j) {
    const next = Array.isArray(j.next_runs) ? j.next_runs : [];
    const last = j.last_run;
    const nextTitle = next.map((n) => `${fmtWall(n.local)} (UTC ${fmtWall(n.utc)})`).join('\n');
    return fill(box, el('dl', { class: 'facts' },
      fact('Schedule', el('code', {}, j.schedule || '—')),
      fact('Time zone', j.timezone || '—'),
      fact('Next run', next.length ? el('span', { title: nextTitle }, fmtWall(next[0].local)) : '—'),
      fact('Last run', last ? [chip(last.status), ' ', timeEl(last.started_at)] : 'never'),
      j.metrics && j.metrics.length ? fact('Metrics', j.metrics.map((m, i) =>
        [i ? ', ' : '', el('a', { href: `#/metrics/${encodeURIComponent(m)}` }, m)])) : null));
  }

  let uid = 0;
  function jobCard(j, refreshRuns) {
    const dateId = `run-date-${++uid}`;
    const date = el('input', { type: 'date', class: 'run-date', id: dateId, name: 'date' });
    const btn = el('button', { type: 'submit', class: 'run-now' }, 'Run now');
    const status = el('p', { class: 'trigger-status', role: 'status', 'aria-live': 'polite' });
    const form = el('form', { class: 'run-form', 'aria-label': `Run ${j.name}` },
      el('label', { for: dateId }, 'Period date ', el('span', { class: 'muted small' }, '(optional)')),
      date, btn, status);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      btn.disabled = true;
      status.className = 'trigger-status';
      status.textContent = 'Starting…';
      try {
        const res = await api(`/jobs/${encodeURIComponent(j.name)}/trigger`,
          { method: 'POST', body: date.value ? { date: date.value } : {} });
        const n = res && (Array.isArray(res.runs) ? res.runs.length : res.runs);
        status.classList.add('ok');
        status.textContent = `triggered${typeof n === 'number' ? `: ${n} run${n === 1 ? '' : 's'}` : ''}`
          + `${date.value ? ` for ${date.value}` : ''}`;
        refreshRuns();
        later(1500, refreshRuns);
        later(5000, refreshRuns);
      } catch (err) {
        if (isAuth(err)) return;
        status.classList.add('error'); // 403 and the rest: the API's own message, right here
        status.textContent = err.message;
      } finally {
        btn.disabled = false;
      }
    });
    return el('article', { class: 'card job', 'data-job': j.name },
      el('h2', {}, j.name, ' ', el('span', { class: 'kind' }, j.kind || '')),
      jobInfo(el('div', { class: 'job-info' }), j),
      form);
  }

  // ---------- runs ----------
  function runsView() {
    const sel = el('select', { id: 'runs-job' }, el('option', { value: '' }, 'All jobs'));
    const box = el('div', {}, loading());
    mount('Runs', [
      el('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
        el('div', { class: 'field' }, el('label', { for: 'runs-job' }, 'Job'), sel)),
      el('section', { class: 'card' }, box),
    ]);
    api('/jobs').then((jobs) => {
      for (const j of jobs || []) sel.append(el('option', { value: j.name }, j.name));
    }).catch(() => { /* the filter just stays at "All jobs" */ });
    sel.addEventListener('change', () => { fill(box, loading()); loadRuns(box, sel.value, 50); });
    every(5000, () => loadRuns(box, sel.value, 50));
  }

  async function loadRuns(box, job, limit) {
    const seq = (box.seq = (box.seq || 0) + 1);
    const q = new URLSearchParams({ limit: String(limit) });
    if (job) q.set('job', job);
    let runs;
    try {
      runs = await api(`/runs?${q}`);
    } catch (e) {
      if (isAuth(e)) return false;
      if (seq === box.seq) { box.sig = null; fill(box, errorBox(e, () => loadRuns(box, job, limit))); }
      return true;
    }
    if (seq !== box.seq) return true;
    const sig = JSON.stringify(runs);
    if (box.sig === sig) return true;
    box.sig = sig;
    const list = Array.isArray(runs) ? runs : [];
    // The table is there even when empty: a stable hook for whoever looks for table#runs.
    fill(box, runsTable(list), list.length ? null : muted(job ? `No runs of ${job} yet.` : 'No runs yet.'));
    return true;
  }

  function runsTable(runs) {
    return table({ id: 'runs' },
      [['Run', 'num'], 'Job', ['Trigger', 'opt'], 'Status', 'Period', ['Started', 'opt'], ['Duration', 'num opt'], 'Metrics'],
      el('tbody', {}, runs.map((r) => el('tr', { 'data-run-id': r.id, 'data-status': r.status },
        el('td', { class: 'num' }, r.id),
        el('td', { class: 'job' }, r.job),
        el('td', { class: 'opt' }, r.trigger || '—', r.attempt > 1 ? el('div', { class: 'sub' }, `attempt ${r.attempt}`) : null),
        el('td', {}, chip(r.status),
          r.error ? el('div', { class: 'error-text' }, r.error) : null,
          r.summary ? el('div', { class: 'sub' }, r.summary) : null),
        el('td', {}, fmtPeriod(r.period_start, r.period_end)),
        el('td', { class: 'opt' }, timeEl(r.started_at)),
        el('td', { class: 'num opt' }, fmtDur(r.duration_ms)),
        el('td', {}, metricResults(r.metrics))))));
  }

  function metricResults(ms) {
    if (!Array.isArray(ms) || !ms.length) return el('span', { class: 'muted' }, '—');
    return el('ul', { class: 'metric-results' }, ms.map((m) => el('li', {},
      chip(m.status), ' ',
      el('a', { href: `#/metrics/${encodeURIComponent(m.metric)}` }, m.metric),
      el('span', { class: 'muted small' }, ` ${fmtNum(m.rows)} rows · ${fmtDur(m.duration_ms)}`),
      m.error ? el('div', { class: 'error-text' }, m.error) : null)));
  }

  // ---------- metrics ----------
  function metricsView(encoded) {
    let wanted = '';
    try { wanted = decodeURIComponent(encoded || ''); } catch { wanted = ''; }
    const sel = el('select', { id: 'metric-name', name: 'name' }, el('option', { value: '' }, 'Loading…'));
    const from = el('input', { type: 'date', id: 'metric-from', name: 'from' });
    const to = el('input', { type: 'date', id: 'metric-to', name: 'to' });
    const field = (id, label, input) => el('div', { class: 'field' }, el('label', { for: id }, label), input);
    const form = el('form', { class: 'filters' },
      field('metric-name', 'Metric', sel), field('metric-from', 'From', from), field('metric-to', 'To', to),
      el('button', { type: 'submit' }, 'Show'));
    const out = el('div', {}, loading());
    mount('Metrics', [form, out]);

    const load = async () => {
      const name = sel.value;
      if (!name) return;
      history.replaceState(null, '', `#/metrics/${encodeURIComponent(name)}`);
      const seq = (out.seq = (out.seq || 0) + 1);
      fill(out, loading());
      const q = new URLSearchParams({ name, limit: '1000' });
      if (from.value) q.set('from', from.value);
      if (to.value) q.set('to', to.value);
      try {
        const rows = await api(`/metrics/calculated?${q}`);
        if (seq === out.seq) renderMetric(out, name, Array.isArray(rows) ? rows : []);
      } catch (e) {
        if (!isAuth(e) && seq === out.seq) fill(out, errorBox(e, load));
      }
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
    sel.addEventListener('change', load);

    api('/jobs').then((jobs) => {
      const names = [...new Set((jobs || []).flatMap((j) => j.metrics || []))].sort();
      if (wanted && !names.includes(wanted)) names.unshift(wanted);
      if (!names.length) {
        fill(sel, el('option', { value: '' }, 'none'));
        fill(out, muted('No job computes metrics: add a metrics job to caudal.toml.'));
        return;
      }
      fill(sel, names.map((n) => el('option', { value: n }, n)));
      sel.value = wanted || names[0];
      load();
    }).catch((e) => { if (!isAuth(e)) fill(out, errorBox(e, () => route())); });
  }

  function renderMetric(out, name, rows) {
    if (!rows.length) {
      fill(out, muted(`No values for ${name} yet: they appear once the job that computes it has run.`));
      return;
    }
    const unit = (rows.find((r) => r.unit) || {}).unit;
    const withUnit = (v) => (v == null ? '—' : `${fmtNum(v)}${unit ? ` ${unit}` : ''}`);
    fill(out,
      el('section', { class: 'card' }, el('h2', {}, name, unit ? el('span', { class: 'muted' }, ` (${unit})`) : null),
        lineChart(rows, name) || muted('Nothing to draw: no numeric value has a period start.')),
      el('section', { class: 'card' }, el('h2', {}, 'Values'),
        table({ id: 'metric-values' },
          ['Period start', ['Period end', 'opt'], 'Dimensions', ['Value', 'num'], ['Computed', 'opt']],
          el('tbody', {}, rows.map((r) => el('tr', {},
            el('td', {}, fmtWall(r.period_start)),
            el('td', { class: 'opt' }, fmtWall(r.period_end)),
            el('td', {}, dimsLabel(r.dimensions)),
            el('td', { class: 'num' }, withUnit(r.value)),
            el('td', { class: 'opt' }, timeEl(r.computed_at))))))));
  }

  function dimsLabel(d) {
    if (d == null) return 'all';
    if (typeof d !== 'object') return String(d);
    const parts = Object.keys(d).sort().map((k) => `${k}=${fmtAny(d[k])}`);
    return parts.length ? parts.join(', ') : 'all';
  }

  // Periods are wall times of the job's zone ("2026-11-24T00:00:00"): read them as UTC so that
  // axis labels show them as written, whatever the browser's zone.
  function parseTime(s) {
    if (!s) return null;
    let str = String(s).trim().replace(' ', 'T');
    if (/^\d{4}-\d\d-\d\d$/.test(str)) str += 'T00:00:00';
    if (!/(Z|[+-]\d\d:?\d\d)$/i.test(str)) str += 'Z';
    const t = Date.parse(str);
    return isNaN(t) ? null : t;
  }

  function niceTicks(lo, hi, n = 5) {
    const span = hi - lo;
    const mag = 10 ** Math.floor(Math.log10(span / n));
    const step = [1, 2, 2.5, 5, 10].map((s) => s * mag).find((s) => span / s <= n) || mag * 10;
    const ticks = [];
    for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
    return ticks;
  }

  // One line per distinct dimensions value (the MAX_SERIES with the most points), value over period_start.
  function lineChart(rows, name) {
    const groups = new Map();
    for (const r of rows) {
      const t = parseTime(r.period_start);
      if (t == null || typeof r.value !== 'number' || !Number.isFinite(r.value)) continue;
      const key = dimsLabel(r.dimensions);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push({ t, v: r.value });
    }
    if (!groups.size) return null;
    let series = [...groups].map(([label, pts]) => ({ label, pts: pts.sort((a, b) => a.t - b.t) }));
    series.sort((a, b) => b.pts.length - a.pts.length || a.label.localeCompare(b.label));
    const dropped = series.length - MAX_SERIES;
    series = series.slice(0, MAX_SERIES);

    const all = series.flatMap((s) => s.pts);
    const times = [...new Set(all.map((p) => p.t))].sort((a, b) => a - b);
    const t0 = times[0], t1 = times[times.length - 1];
    let v0 = Math.min(...all.map((p) => p.v)), v1 = Math.max(...all.map((p) => p.v));
    if (v0 === v1) { const pad = Math.abs(v0) * 0.1 || 1; v0 -= pad; v1 += pad; }
    const ticks = niceTicks(v0, v1);
    v0 = Math.min(v0, ticks[0]);
    v1 = Math.max(v1, ticks[ticks.length - 1]);

    const W = 640, H = 260, L = 60, R = 16, T = 12, B = 28;
    const x = (t) => (t1 === t0 ? (L + W - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
    const y = (v) => H - B - ((v - v0) / (v1 - v0)) * (H - T - B);
    const dateOnly = times.every((t) => t % 86400000 === 0);
    const fmtT = (t) => new Date(t).toISOString().slice(0, dateOnly ? 10 : 16).replace('T', ' ');

    const chart = svg('svg', {
      class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
      'aria-label': `${name} by period start, ${series.length} line${series.length === 1 ? '' : 's'}; the values are in the table below`,
    });
    for (const v of ticks) {
      chart.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtCompact(v)));
    }
    const nx = Math.min(times.length, 5);
    for (let i = 0; i < nx; i++) {
      const t = times[nx === 1 ? 0 : Math.round((i * (times.length - 1)) / (nx - 1))];
      const anchor = nx === 1 ? 'middle' : i === 0 ? 'start' : i === nx - 1 ? 'end' : 'middle';
      chart.append(svg('text', { x: x(t), y: H - 8, 'text-anchor': anchor }, fmtT(t)));
    }
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      if (s.pts.length > 1) {
        chart.append(svg('polyline', {
          points: s.pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '),
          fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round',
        }));
      }
      for (const p of s.pts) {
        chart.append(svg('circle', { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3, fill: color },
          svg('title', {}, `${s.label} · ${fmtT(p.t)}: ${fmtNum(p.v)}`)));
      }
    });
    const legend = el('ul', { class: 'legend', 'aria-label': 'Legend' }, series.map((s, i) => {
      const sw = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.backgroundColor = COLORS[i % COLORS.length];
      return el('li', {}, sw, s.label);
    }));
    return el('div', {}, chart, legend,
      dropped > 0 ? muted(`Showing the ${MAX_SERIES} lines with the most points; ${dropped} more are in the table.`) : null);
  }

  // ---------- router ----------
  const ROUTES = [
    [/^#?\/?$/, 'nav-overview', overview],
    [/^#\/deliveries\/(\d+)\/?$/, 'nav-overview', deliveryView],
    [/^#\/jobs\/?$/, 'nav-jobs', jobsView],
    [/^#\/runs\/?$/, 'nav-runs', runsView],
    [/^#\/metrics(?:\/([^/]*))?\/?$/, 'nav-metrics', metricsView],
    [/^#\/alerts\/?$/, 'nav-alerts', alertsView],
  ];

  function route() {
    stopView();
    if (!tokenForm.hidden) return;
    const hash = location.hash;
    for (const a of document.querySelectorAll('.top nav a')) a.removeAttribute('aria-current');
    for (const [re, nav, render] of ROUTES) {
      const m = re.exec(hash);
      if (!m) continue;
      $(`#${nav}`).setAttribute('aria-current', 'page');
      try {
        render(...m.slice(1));
      } catch (e) {
        mount('Error', [errorBox(e, () => route())]);
      }
      return;
    }
    mount('Not found', [el('p', {}, 'Nothing lives at ', el('code', {}, hash), '. ',
      el('a', { href: '#/' }, 'Back to the overview'), '.')]);
  }

  window.addEventListener('hashchange', route);
  updateSignOut();
  refreshHealth();
  refreshAlerts();
  setInterval(refreshHealth, 10000);
  setInterval(refreshAlerts, 10000);
  if (!getToken() && !store.get('sessionStorage', ANON_KEY)) showTokenForm('');
  else route();
})();
