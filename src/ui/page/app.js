// The mcpctl dashboard: the overview and events arrive over one EventSource
// (/api/v1/events); a server's page adds its plots, tools and log. Everything the
// daemon sends is put in the page as text, never as markup.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const MAX_LOG_LINES = 1000;
const MAX_EVENTS = 200;
// The session's key: from the login's address fragment into this origin's session
// storage (another program on 127.0.0.1 may see the cookie, never this).
let key = '';
let overview = null;
let shown = null;          // the server whose page is open
let logStream = null;
let plotTimer = null;
let pending = null;        // the action whose plan is in the dialog

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function duration(secs) {
  if (secs === null || secs === undefined) return '-';
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
  const m = Math.floor(secs / 60) % 60, s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function bytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// A state as text and a class; the class adds a symbol, so colour is never alone.
function stateClass(state) {
  if (/^running/.test(state)) return 'ok';
  if (/crash|fail|exited|unhealthy|error/.test(state)) return 'bad';
  if (/degraded|starting|backoff|draining|not in file/.test(state)) return 'warn';
  return 'off';
}

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin' }, options);
  opts.headers = Object.assign({ 'x-mcpctl-key': key }, opts.headers || {});
  const response = await fetch(path, opts);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { status: response.status, body };
}

function renderOverview() {
  const doc = overview;
  $('#config').textContent = doc.daemon.config ? `${doc.daemon.config} · daemon ${doc.daemon.pid}` : '';
  $('#origin').textContent = doc.origin && doc.origin.line ? doc.origin.line : 'nothing applied yet';
  const drift = doc.origin && doc.origin.warning;
  $('#drift').hidden = !drift;
  $('#drift').textContent = drift ? `warning: ${drift}` : '';
  const servers = doc.status.filter((r) => r.server !== undefined);
  const endpoints = doc.status.filter((r) => r.endpoint !== undefined);
  const body = $('#servers tbody');
  body.replaceChildren(...servers.map((r) => {
    const traffic = r.traffic || {};
    return el('tr', { 'data-server': r.server },
      el('td', {}, el('a', { href: `#/server/${encodeURIComponent(r.server)}`, text: r.server })),
      el('td', { class: `state ${stateClass(r.status)}`, text: r.status }),
      el('td', { text: `${r.instances_running}/${r.instances_desired}` }),
      el('td', { class: 'pids', text: r.pids.length ? r.pids.join(' ') : '-' }),
      el('td', { text: duration(r.uptime_secs) }),
      el('td', { class: 'restarts', text: String(r.restarts) }),
      el('td', { text: r.protocol || '-' }),
      el('td', { text: String(r.port) }),
      el('td', { text: String(traffic.sessions || 0) }),
      el('td', { text: r.usage ? `${r.usage.cpu_percent.toFixed(1)}%` : '-' }),
      el('td', { text: r.usage ? bytes(r.usage.rss_bytes) : '-' }));
  }));
  $('#endpoints-block').hidden = endpoints.length === 0;
  $('#endpoints tbody').replaceChildren(...endpoints.map((e) => el('tr', { 'data-endpoint': e.endpoint },
    el('td', { text: e.endpoint }),
    el('td', { class: `state ${stateClass(e.status)}`, text: e.status }),
    el('td', { text: e.url }),
    el('td', { text: `${e.members_up}/${e.members_total}` }),
    el('td', { text: String(e.tools) }))));
  if (shown) renderServerState();
}

function addEvent(event) {
  const list = $('#events');
  if (list.querySelector(`[data-id="${event.id}"]`)) return;
  const item = el('li', { 'data-id': String(event.id), 'data-kind': event.kind },
    el('span', { class: 'kind', text: event.kind }),
    el('time', { text: `${event.at} ` }),
    el('span', { text: event.message }));
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function signedOut() {
  $('#signin').hidden = false;
  $('#overview').hidden = true;
  $('#server').hidden = true;
  $('#activity').hidden = true;
  $('#connection').textContent = 'not signed in';
}

// One stream; when the daemon refuses it (signed out, too many streams, stopping) the
// page says so and tries again later, instead of showing old figures as live.
function connect() {
  const events = new EventSource(`/api/v1/events?key=${encodeURIComponent(key)}`);
  events.addEventListener('overview', (e) => {
    overview = JSON.parse(e.data);
    $('#connection').textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    renderOverview();
  });
  events.addEventListener('event', (e) => addEvent(JSON.parse(e.data)));
  events.onerror = async () => {
    $('#connection').textContent = 'disconnected: the figures shown are not live';
    events.close();
    const { status } = await api('/api/v1/session').catch(() => ({ status: 0 }));
    if (status === 401) { signedOut(); return; }
    if (status === 503) $('#connection').textContent = 'the daemon is busy (too many pages open); retrying…';
    setTimeout(connect, 3000);
  };
}

// --- one server ---------------------------------------------------------------

function report(name) {
  return overview ? overview.status.find((r) => r.server === name) : null;
}

function renderServerState() {
  const r = report(shown);
  const state = $('#server-state');
  if (!r) { state.textContent = 'not in the file, not running'; return; }
  state.className = `state ${stateClass(r.status)}`;
  const count = $('#scale-count');
  if (document.activeElement !== count) count.value = String(r.instances_desired);
  state.textContent = `${r.status} · ${r.instances_running}/${r.instances_desired} instances · ${r.restarts} restarts · ${r.http_endpoint}`;
  const rows = (r.instance_ids || []).map((id, i) => el('tr', {},
    el('td', { text: String(id) }),
    el('td', { text: r.status }),
    el('td', { text: r.pids[i] ? String(r.pids[i]) : '-' }),
    el('td', { text: duration(r.uptime_secs) }),
    el('td', { text: String(r.restarts) }),
    el('td', { text: r.last_exit || '-' })));
  $('#instances tbody').replaceChildren(...rows);
}

function plot(title, unit, series) {
  const width = 300, height = 120, pad = 22;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'plot');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', title);
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => p[0]);
  const vs = all.map((p) => p[1]);
  // From the first sample kept (at most an hour back) to now.
  const now = Date.now() / 1000;
  const t0 = Math.min(...ts, now - 60), t1 = Math.max(...ts, now);
  const peak = Math.max(...vs, 0) || 1;
  const top = peak * 1.1;
  const x = (t) => pad + (t - t0) / (t1 - t0) * (width - pad - 4);
  const y = (v) => height - pad + 4 - v / top * (height - pad - 4);
  const line = (x1, y1, x2, y2) => {
    const l = document.createElementNS(SVG, 'line');
    l.setAttribute('x1', x1); l.setAttribute('y1', y1); l.setAttribute('x2', x2); l.setAttribute('y2', y2);
    l.setAttribute('class', 'grid');
    return l;
  };
  svg.append(line(pad, y(0), width, y(0)), line(pad, y(peak), width, y(peak)));
  const label = (text, lx, ly) => {
    const t = document.createElementNS(SVG, 'text');
    t.setAttribute('x', lx); t.setAttribute('y', ly); t.textContent = text;
    return t;
  };
  svg.append(label(`${peak.toFixed(peak < 10 ? 2 : 0)} ${unit}`, pad + 2, y(peak) - 2), label(`-${duration(Math.round(t1 - t0))}`, pad, height - 4), label('now', width - 24, height - 4));
  series.forEach((s, i) => {
    const poly = document.createElementNS(SVG, 'polyline');
    poly.setAttribute('class', `s${i}`);
    poly.setAttribute('points', s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '));
    svg.append(poly);
    if (s.points.length === 1) {
      const dot = document.createElementNS(SVG, 'circle');
      dot.setAttribute('class', `s${i}`);
      dot.setAttribute('cx', x(s.points[0][0]).toFixed(1));
      dot.setAttribute('cy', y(s.points[0][1]).toFixed(1));
      dot.setAttribute('r', '2');
      svg.append(dot);
    }
  });
  const names = series.map((s) => s.name).join(', ');
  return el('figure', { 'data-plot': title }, svg, el('figcaption', { text: `${title} (${names})` }));
}

async function loadPlots(name) {
  const { status, body } = await api(`/api/v1/servers/${encodeURIComponent(name)}/metrics?since=0`);
  if (name !== shown) return;
  const points = status === 200 ? body : [];
  const s = (field, scale) => points.filter((p) => p[field] !== null).map((p) => [p.t, p[field] * (scale || 1)]);
  $('#plots').replaceChildren(
    plot('CPU', '%', [{ name: 'cpu', points: s('cpu_percent') }]),
    plot('Memory', 'MiB', [{ name: 'rss', points: s('rss_bytes', 1 / 1048576) }]),
    plot('Requests', '/s', [{ name: 'requests', points: s('requests_per_sec') }]),
    plot('Errors', '/s', [{ name: 'errors', points: s('errors_per_sec') }]),
    plot('Latency', 'ms', [{ name: 'p50', points: s('p50_ms') }, { name: 'p99', points: s('p99_ms') }]));
}

async function loadTools(name) {
  const { status, body } = await api(`/api/v1/servers/${encodeURIComponent(name)}/tools`);
  if (name !== shown) return;
  const rows = [];
  if (status === 200 && body) {
    for (const t of body.shown || []) rows.push(el('tr', {}, el('td', { text: t.name }), el('td', { text: 'yes' }), el('td', { text: '' })));
    for (const t of body.hidden || []) rows.push(el('tr', {}, el('td', { text: t.name }), el('td', { text: 'no' }), el('td', { text: t.why || '' })));
  }
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: '3', class: 'muted', text: status === 200 ? 'no tools listed yet' : (body && body.error) || 'not known' })));
  $('#tools tbody').replaceChildren(...rows);
}

function followLog(name) {
  if (logStream) logStream.close();
  const log = $('#log');
  log.replaceChildren();
  const level = $('#log-level').value;
  const query = `follow=1&lines=200${level ? `&level=${level}` : ''}`;
  logStream = new EventSource(`/api/v1/servers/${encodeURIComponent(name)}/logs?${query}&key=${encodeURIComponent(key)}`);
  // Lines are drawn once a frame, the newest kept: a flooding server cannot freeze the page.
  let waiting = [];
  let drawing = false;
  const draw = () => {
    drawing = false;
    const lines = waiting.slice(-MAX_LOG_LINES);
    waiting = [];
    const batch = document.createDocumentFragment();
    for (const { line, level: lineLevel } of lines) batch.append(el('div', { class: lineLevel || '', text: line }));
    log.append(batch);
    let extra = log.children.length - MAX_LOG_LINES;
    while (extra-- > 0) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  };
  logStream.addEventListener('line', (e) => {
    waiting.push(JSON.parse(e.data));
    if (waiting.length > MAX_LOG_LINES) waiting = waiting.slice(-MAX_LOG_LINES);
    if (!drawing) { drawing = true; requestAnimationFrame(draw); }
  });
  logStream.onerror = () => { if (logStream) { logStream.close(); logStream = null; } };
}

function showServer(name) {
  shown = name;
  $('#overview').hidden = true;
  $('#server').hidden = false;
  $('#server-name').textContent = name;
  $('#action-result').textContent = '';
  renderServerState();
  loadPlots(name);
  loadTools(name);
  followLog(name);
  clearInterval(plotTimer);
  plotTimer = setInterval(() => loadPlots(name), 10000);
}

function showOverview() {
  shown = null;
  clearInterval(plotTimer);
  if (logStream) { logStream.close(); logStream = null; }
  $('#server').hidden = true;
  $('#overview').hidden = false;
}

function route() {
  const match = location.hash.match(/^#\/server\/(.+)$/);
  if (match) showServer(decodeURIComponent(match[1]));
  else showOverview();
}

// --- actions: the plan first, then the same edit and converge as the CLI -------

function actionBody(action, confirm) {
  const body = {};
  if (action === 'scale') body.instances = Number($('#scale-count').value);
  if (confirm) body.confirm = confirm;
  return JSON.stringify(body);
}

async function post(action, confirm) {
  return api(`/api/v1/servers/${encodeURIComponent(shown)}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: actionBody(action, confirm),
  });
}

async function ask(action) {
  const { status, body } = await post(action, null);
  if (status !== 200) { $('#action-result').textContent = `${action}: ${(body && body.error) || status}`; return; }
  pending = { action, confirm: body.confirm };
  $('#confirm-title').textContent = `${action} ${shown}`;
  $('#confirm-plan').textContent = body.plan;
  $('#confirm').showModal();
}

async function run() {
  const { action, confirm } = pending || {};
  $('#confirm').close();
  if (!action) return;
  pending = null;
  $('#action-result').textContent = `${action}: applying…`;
  const { status, body } = await post(action, confirm);
  if (status === 200) $('#action-result').textContent = `${action}: done`;
  else $('#action-result').textContent = `${action}: ${(body && (body.error || (body.failures || []).join('; '))) || status}`;
}

async function start() {
  const given = location.hash.match(/^#key=([0-9a-f]+)$/);
  if (given) {
    sessionStorage.setItem('mcpctl-key', given[1]);
    // Out of the address (and so of the history) at once.
    history.replaceState(null, '', '/');
  }
  key = sessionStorage.getItem('mcpctl-key') || '';
  const session = await api('/api/v1/session');
  if (session.status !== 200) { signedOut(); return; }
  for (const button of document.querySelectorAll('[data-action]')) {
    button.addEventListener('click', () => ask(button.dataset.action));
  }
  $('#confirm-run').addEventListener('click', run);
  $('#confirm-cancel').addEventListener('click', () => { pending = null; $('#confirm').close(); });
  $('#log-level').addEventListener('change', () => { if (shown) followLog(shown); });
  window.addEventListener('hashchange', route);
  connect();
  route();
}

start();
