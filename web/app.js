// The teaching page's script: one column per login variant, each talking to its own path prefix
// on this origin (the balancer routes /memory/, /sticky/, /redis/ and /jwt/ to the variant's
// servers). Every request lands in the column's list with the server that answered it
// (X-Served-By), so the class sees the round robin and what each variant makes of it.
'use strict';

// The demo users (the page lists them too): passwords for the classroom only.
const USERS = { alice: 'alice-password', bob: 'bob-password', carol: 'carol-password' };
const LOG_MAX = 14;
// Different users in the columns keep them apart on the wall; bob in JWT can try to become admin.
const DEFAULT_USER = { memory: 'alice', sticky: 'bob', redis: 'carol', jwt: 'bob' };
// The demo-only control API needs this token, which webdemo.py puts into the page it serves.
const DEMO_TOKEN = document.querySelector('meta[name="demo-token"]').content;
const columns = {};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// One colour per server: app1, app2, ... get the palette in order.
function serverClass(name) {
  const m = /^app(\d+)$/.exec(name || '');
  return m ? 'srv srv' + (((Number(m[1]) - 1) % 8) + 1) : 'srv srv-other';
}

function showPageError(text) {
  const p = document.getElementById('page-error');
  p.textContent = text;
  p.hidden = false;
}

// ---- requests and the log ------------------------------------------------------------------

// Sends one request to the column's prefix and logs it; returns {status, data, server}.
async function send(col, method, path, opts = {}) {
  const headers = Object.assign({}, opts.headers);
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const t0 = performance.now();
  let status = 0, server = '', data = null;
  try {
    const res = await fetch('/' + col.name + path, {
      method, headers, body, credentials: 'same-origin', cache: 'no-store',
    });
    status = res.status;
    server = res.headers.get('X-Served-By') || '';
    data = await res.json().catch(() => null);
  } catch (e) {
    data = { error: 'network_error', message: String(e) };
  }
  addLog(col, { method, path, status, server, ms: performance.now() - t0, data, note: opts.note });
  return { status, data, server };
}

function addLog(col, r) {
  const ok = r.status >= 200 && r.status < 300;
  const li = el('li', ok ? 'ok' : 'fail');
  li.dataset.status = String(r.status);
  li.dataset.server = r.server;
  li.dataset.path = r.path;
  li.append(el('span', serverClass(r.server), r.server || '—'),
    el('span', 'status', (ok ? '✓ ' : '✗ ') + (r.status || 'ERR')),
    el('span', 'req', r.method + ' ' + r.path + (r.note ? ' (' + r.note + ')' : '')),
    el('span', 'ms', Math.round(r.ms) + ' ms'));
  if (!ok && r.data && r.data.error) {
    li.dataset.code = r.data.error;
    li.append(el('span', 'code', r.data.error));
  }
  col.log.append(li);
  while (col.log.children.length > LOG_MAX) col.log.firstElementChild.remove();
  if (r.path === '/profile' && !r.note) {
    col.counts[ok ? 'ok' : 'fail']++;
    updateTally(col);
  }
  for (const chip of col.servers.children) chip.classList.toggle('last', chip.dataset.server === r.server);
}

function updateTally(col) {
  const { ok, fail } = col.counts;
  col.tally.dataset.ok = String(ok);
  col.tally.dataset.fail = String(fail);
  col.tally.className = 'tally' + (fail ? ' bad' : ok ? ' good' : '');
  col.tally.textContent = ok + fail === 0 ? 'No profile requests yet.' :
    `Profile: ${ok} answered, ${fail} refused` + (fail ? ' — the session was not there.' : '.');
}

// ---- the actions of a column ---------------------------------------------------------------

function authHeaders(col) {
  return col.token ? { Authorization: 'Bearer ' + col.token } : {};
}

async function login(col) {
  const user = col.user.value;
  col.counts = { ok: 0, fail: 0 };
  updateTally(col);
  const r = await send(col, 'POST', '/login', { json: { username: user, password: USERS[user] } });
  if (col.name === 'jwt') showToken(col, r.status === 200 && r.data ? r.data.access_token : null);
}

async function profileSix(col) {
  for (let i = 0; i < 6; i++) await send(col, 'GET', '/profile', { headers: authHeaders(col) });
}

async function logout(col) {
  await send(col, 'POST', '/logout', { headers: authHeaders(col) });
  if (col.name === 'jwt') showToken(col, null);
}

// Runs one action at a time per column: the buttons wait while it runs.
function busy(col, fn) {
  return async () => {
    col.section.classList.add('busy');
    col.buttons.forEach((b) => { b.disabled = true; });
    try { await fn(col); } finally {
      col.buttons.forEach((b) => { b.disabled = false; });
      col.section.classList.remove('busy');
    }
  };
}

// ---- JWT: the token in the jwt.io style -----------------------------------------------------

function b64urlDecode(s) {
  s = s.replace(/-/g, '+').replace(/_/g, '/');
  while (s.length % 4) s += '=';
  return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
}

function b64urlEncode(text) {
  let bin = '';
  new TextEncoder().encode(text).forEach((b) => { bin += String.fromCharCode(b); });
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function showToken(col, token) {
  const j = col.jwt;
  col.token = token;
  clearInterval(j.timer);
  j.box.hidden = !token;
  if (!token) return;
  const [h, p, s] = token.split('.');
  j.parts = { h, p, s };
  j.encH.textContent = h;
  j.encP.textContent = p;
  j.encS.textContent = s;
  let header, payload;
  try {
    header = JSON.parse(b64urlDecode(h));
    payload = JSON.parse(b64urlDecode(p));
  } catch (e) {
    j.decH.textContent = j.decP.textContent = 'cannot decode: ' + e;
    return;
  }
  j.decH.textContent = JSON.stringify(header, null, 2);
  j.decP.textContent = JSON.stringify(payload, null, 2);
  j.edit.value = JSON.stringify(payload, null, 2);
  j.result.textContent = '';
  const tick = () => {
    const left = Math.round(payload.exp - Date.now() / 1000);
    j.expiry.textContent = left > 0 ?
      `expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : 'expired';
    j.expiry.classList.toggle('expired', left <= 0);
  };
  tick();
  j.timer = setInterval(tick, 1000);
}

// Same header, same signature, another payload: any server must refuse it.
async function tamper(col) {
  const j = col.jwt;
  let payload;
  try {
    payload = JSON.stringify(JSON.parse(j.edit.value));
  } catch (e) {
    j.result.textContent = 'The payload is not JSON: ' + e.message;
    j.result.className = 'tamper-result fail';
    return;
  }
  const forged = j.parts.h + '.' + b64urlEncode(payload) + '.' + j.parts.s;
  const r = await send(col, 'GET', '/profile', { headers: { Authorization: 'Bearer ' + forged },
    note: 'tampered' });
  const ok = r.status === 200;
  j.result.dataset.status = String(r.status);
  j.result.className = 'tamper-result ' + (ok ? 'ok' : 'fail');
  j.result.textContent = ok ? `${r.status}: accepted?!` :
    `${r.status} ${r.data ? r.data.error : ''}: ${r.data ? r.data.message : ''} (${r.server})`;
}

// ---- the servers and the demo-only controls ------------------------------------------------

async function api(method, path, body) {
  const res = await fetch(path, {
    method, credentials: 'same-origin', cache: 'no-store',
    headers: Object.assign({ 'X-Demo-Token': DEMO_TOKEN },
      body ? { 'Content-Type': 'application/json' } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.message || 'HTTP ' + res.status);
  return data;
}

function renderServers(col, servers) {
  const last = col.servers.querySelector('.last');
  col.servers.replaceChildren();
  for (const s of servers) {
    const chip = el('div', serverClass(s.name) + ' server' + (s.running ? '' : ' down'));
    chip.dataset.server = s.name;
    chip.dataset.running = String(s.running);
    if (last && last.dataset.server === s.name) chip.classList.add('last');
    const b = el('button', 'ctl', s.running ? '■ stop' : '▶ start');
    b.title = (s.running ? 'Stop ' : 'Start ') + s.name;
    b.addEventListener('click', () => control(col, s.name, s.running ? 'stop' : 'start', b));
    chip.append(el('span', 'name', s.name), el('span', 'state', s.running ? 'up' : 'down'), b);
    col.servers.append(chip);
  }
}

async function refreshServers() {
  try {
    const data = await api('GET', '/api/servers');
    for (const c of data.columns) if (columns[c.column]) renderServers(columns[c.column], c.servers);
  } catch (e) {
    showPageError('Server controls unavailable: ' + e.message);
  }
}

async function control(col, server, action, button) {
  button.disabled = true;
  button.textContent = action === 'stop' ? 'stopping…' : 'starting…';
  try {
    await api('POST', '/api/' + action, { column: col.name, server });
  } catch (e) {
    showPageError(`${action} ${server}: ${e.message}`);
  }
  await refreshServers();
}

// ---- set-up --------------------------------------------------------------------------------

function setUp() {
  const tpl = document.getElementById('col-body');
  for (const section of document.querySelectorAll('section.col')) {
    section.append(tpl.content.cloneNode(true));
    const q = (s) => section.querySelector(s);
    const col = {
      name: section.dataset.col, section, user: q('.user'), servers: q('.servers'),
      tally: q('.tally'), log: q('.log'), counts: { ok: 0, fail: 0 }, token: null,
    };
    if (col.name === 'jwt') {
      section.append(document.getElementById('jwt-body').content.cloneNode(true));
      col.jwt = {
        box: q('.token'), encH: q('.encoded .t-header'), encP: q('.encoded .t-payload'),
        encS: q('.encoded .t-signature'), decH: q('.dec-header'), decP: q('.dec-payload'),
        edit: q('.edit'), result: q('.tamper-result'), expiry: q('.expiry'), timer: 0,
      };
    }
    col.user.value = DEFAULT_USER[col.name] || 'alice';
    col.buttons = [q('.login'), q('.profile'), q('.logout')];
    q('.login').addEventListener('click', busy(col, login));
    q('.profile').addEventListener('click', busy(col, profileSix));
    q('.logout').addEventListener('click', busy(col, logout));
    if (col.jwt) {
      const t = q('.tamper');
      col.buttons.push(t);
      t.addEventListener('click', busy(col, tamper));
    }
    columns[col.name] = col;
  }
  if (!DEMO_TOKEN) {
    showPageError('No demo token: open this page through scripts/web.sh, not from a file.');
    return;
  }
  refreshServers();
  setInterval(refreshServers, 4000);
}

setUp();
