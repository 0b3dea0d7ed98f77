// The teaching page's script: one column per login variant, each talking to its own path prefix
// on this origin (the balancer routes /memory/, /sticky/, /redis/, /jwt/ and /revoke/ to the
// variants' servers; /revoke/ is JWT with the deny-list and refresh tokens, behind the JWT
// column's "deny-list + refresh" box). Every request lands in the column's list with the server
// that answered it (X-Served-By), so the class sees the round robin and what each variant makes
// of it.
'use strict';

// The demo users (the page lists them too): passwords for the classroom only.
const USERS = { alice: 'alice-password', bob: 'bob-password', carol: 'carol-password' };
const LOG_MAX = 12;
// Different users in the columns keep them apart on the wall; bob in JWT can try to become admin.
const DEFAULT_USER = { memory: 'alice', sticky: 'bob', redis: 'carol', jwt: 'bob' };
// The demo-only control API needs this token, which webdemo.py puts into the page it serves.
const DEMO_TOKEN = document.querySelector('meta[name="demo-token"]').content;
// Where the JWT column keeps the token in "localStorage" mode (an injected script reads it here).
const STORAGE_KEY = 'jwt';
// Which client shows which number for memory sessions: the same words as the terminal demo.
const CLIENTS = 'curl in the terminal demo sends the cookie it was given every time, so every ' +
  'request that reaches the login server succeeds (2 of 6). loadgen ignores Set-Cookie on 4xx, ' +
  'so it keeps its cookie: 1 request in 3 succeeds, as with curl.';
const columns = {};
let serverList = null;

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
  p.hidden = !text;
}

// The path prefix a column talks to: the JWT column switches to the deny-list cluster.
function prefix(col) {
  return col.name === 'jwt' && col.jwt.denylist.checked ? 'revoke' : col.name;
}

// ---- requests and the log ------------------------------------------------------------------

// Sends one request to the column's prefix and logs it; returns {status, data, server}.
// opts: headers, json (body), note (shown in the log; such requests stay out of the tally),
// credentials ('omit' when only the Authorization header may carry the token).
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
    const res = await fetch('/' + prefix(col) + path, {
      method, headers, body, credentials: opts.credentials || 'same-origin', cache: 'no-store',
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

// What a failure code means in this column, for the log line.
function codeNote(col, code) {
  if (col.name === 'jwt') return '';
  if (code === 'invalid_session') return ' — unknown here; the 401 deletes the cookie';
  if (code === 'not_authenticated') return ' — the browser sent no cookie';
  return '';
}

function addLog(col, r) {
  const ok = r.status >= 200 && r.status < 300;
  const li = el('li', ok ? 'ok' : 'fail');
  li.dataset.status = String(r.status);
  li.dataset.server = r.server;
  li.dataset.path = r.path;
  if (r.note) li.dataset.note = r.note;
  li.append(el('span', serverClass(r.server), r.server || '—'),
    el('span', 'status', (ok ? '✓ ' : '✗ ') + (r.status || 'ERR')),
    el('span', 'req', r.method + ' ' + r.path + (r.note ? ' (' + r.note + ')' : '')),
    el('span', 'ms', Math.round(r.ms) + ' ms'));
  if (!ok && r.data && r.data.error) {
    li.dataset.code = r.data.error;
    li.append(el('span', 'code', r.data.error + codeNote(col, r.data.error)));
  }
  col.log.prepend(li);
  col.section.dataset.logged = String(Number(col.section.dataset.logged || 0) + 1);
  while (col.log.children.length > LOG_MAX) col.log.lastElementChild.remove();
  if (r.path === '/profile' && !r.note) {
    col.counts[ok ? 'ok' : 'fail']++;
    col.codes.push(ok ? 'ok' : (r.data && r.data.error) || String(r.status));
    updateTally(col);
  }
  for (const chip of col.servers.children) chip.classList.toggle('last', chip.dataset.server === r.server);
}

function updateTally(col) {
  const { ok, fail } = col.counts;
  col.tally.dataset.ok = String(ok);
  col.tally.dataset.fail = String(fail);
  col.tally.className = 'tally' + (fail ? ' bad' : ok ? ' good' : '');
  const why = col.name === 'jwt' ? ' — the token was refused.' : ' — the session was not there.';
  col.tally.textContent = ok + fail === 0 ? 'No profile requests yet.' :
    `Profile: ${ok} answered, ${fail} refused` + (fail ? why : '.');
}

// The memory column's cascade, told when it happened: the first 401 deleted the cookie, so the
// browser stopped sending it and even the login server could no longer tell who this is.
function explainMemory(col) {
  const first = col.codes.indexOf('invalid_session');
  const after = col.codes.slice(first + 1);
  if (first < 0 || !after.includes('not_authenticated')) {
    col.explain.hidden = true;
    return;
  }
  col.explain.hidden = false;
  col.explain.dataset.lesson = 'cascade';
  col.explain.textContent = `The first 401 (invalid_session) also deleted the cookie: ` +
    `Set-Cookie: sid=; Max-Age=0. The browser obeyed, so every later request carried no cookie ` +
    `(not_authenticated), even on ${col.loginServer || 'the login server'}: a browser gets ` +
    `${col.counts.ok} of ${col.counts.ok + col.counts.fail}. ` + CLIENTS;
}

// ---- the actions of a column ---------------------------------------------------------------

// How the JWT column sends its token: a Bearer header from localStorage (no cookie), or the
// HttpOnly cookie the browser attaches by itself (no header: the script cannot read it).
function authOpts(col) {
  if (col.name !== 'jwt' || col.jwt.storage.value === 'cookie') return {};
  const t = localStorage.getItem(STORAGE_KEY);
  return { headers: t ? { Authorization: 'Bearer ' + t } : {}, credentials: 'omit' };
}

async function login(col) {
  const user = col.user.value;
  col.counts = { ok: 0, fail: 0 };
  col.codes = [];
  col.explain.hidden = true;
  updateTally(col);
  const opts = { json: { username: user, password: USERS[user] } };
  if (col.name === 'jwt' && col.jwt.storage.value === 'local') opts.credentials = 'omit';
  const r = await send(col, 'POST', '/login', opts);
  col.loginServer = r.server;
  if (col.name === 'jwt') {
    const token = r.status === 200 && r.data ? r.data.access_token : null;
    // The thief's copy: taken at login, kept whatever the page does later.
    col.stolen = token;
    col.jwt.replay.disabled = !token;
    col.rt = token && r.data.refresh_token ? r.data.refresh_token : null;
    col.oldRt = null;
    showRefresh(col);
    localStorage.removeItem(STORAGE_KEY);
    if (token && col.jwt.storage.value === 'local') localStorage.setItem(STORAGE_KEY, token);
    showToken(col, token);
  }
}

async function profiles(col, n) {
  for (let i = 0; i < n; i++) {
    const r = await send(col, 'GET', '/profile', authOpts(col));
    if (col.name === 'jwt') showVerified(col, r);
  }
  if (col.name === 'memory') explainMemory(col);
}

async function logout(col) {
  await send(col, 'POST', '/logout', authOpts(col));
  if (col.name === 'jwt') {
    localStorage.removeItem(STORAGE_KEY);
    showToken(col, null);
    col.jwt.verified.textContent = col.stolen ?
      'Logged out: the page forgot the token. The thief still has the copy taken at login: replay it.' : '';
  }
}

// The stolen copy, replayed on every server: without a deny-list nothing refuses it.
async function replay(col) {
  const j = col.jwt;
  const codes = [];
  for (let i = 0; i < 3; i++) {
    const r = await send(col, 'GET', '/profile', { headers: { Authorization: 'Bearer ' + col.stolen },
      credentials: 'omit', note: 'stolen copy' });
    codes.push(r.status === 200 ? `${r.server} 200` : `${r.server} ${r.status} ${r.data ? r.data.error : ''}`);
  }
  j.verified.dataset.replay = codes.join(',');
  j.verified.textContent = `The thief's copy: ${codes.join(' · ')}. ` + (j.denylist.checked ?
    'With the deny-list, logout put its jti in Redis and every server checks it.' :
    'Without a deny-list logout cannot take a token back: it works until it expires.');
}

// The refresh buttons: only with refresh tokens (the deny-list cluster gives them at login).
function showRefresh(col) {
  const j = col.jwt;
  j.refresh.hidden = j.thiefRefresh.hidden = !col.rt && !col.oldRt;
}

// POST /refresh with the refresh token in the body; the page never puts it in a URL.
function postRefresh(col, rt, note) {
  return send(col, 'POST', '/refresh', { json: { refresh_token: rt }, credentials: 'omit', note });
}

// Alice refreshes: a new pair, the old refresh token is spent (the thief kept a copy of it).
async function refresh(col) {
  const j = col.jwt;
  const r = await postRefresh(col, col.rt, 'refresh');
  if (r.status === 200 && r.data && r.data.access_token) {
    col.oldRt = col.rt;
    col.rt = r.data.refresh_token;
    if (j.storage.value === 'local') localStorage.setItem(STORAGE_KEY, r.data.access_token);
    showToken(col, r.data.access_token);
    j.verified.textContent = 'Refreshed: a new access token (its countdown starts again) and a new ' +
      'refresh token. The old refresh token is spent; the thief still holds a copy of it.';
  } else {
    j.verified.textContent = `Refresh refused: ${r.status} ${r.data ? r.data.error : ''}. ` +
      (r.data && r.data.error === 'refresh_revoked' ?
        'A spent refresh token came back, so the whole login was revoked: the thief\'s and yours.' : '');
  }
  j.verified.dataset.refresh = String(r.status) + (r.data && r.data.error ? ' ' + r.data.error : '');
}

// The thief presents the spent copy: reuse is detected and the whole family dies, everywhere.
async function thiefRefresh(col) {
  const j = col.jwt;
  const r = await postRefresh(col, col.oldRt, 'thief');
  j.verified.dataset.thief = String(r.status) + (r.data && r.data.error ? ' ' + r.data.error : '');
  j.verified.textContent = r.status === 401 && r.data && r.data.error === 'refresh_reused' ?
    'The thief\'s spent refresh token: 401 refresh_reused. Nobody can tell thief from owner, so ' +
    'the whole login is revoked: your next refresh and your access token are refused too.' :
    `The thief's refresh: ${r.status} ${r.data ? r.data.error || '' : ''}`;
}

// Runs one action at a time per column: the buttons wait while it runs.
function busy(col, fn) {
  return async () => {
    col.section.classList.add('busy');
    col.buttons.forEach((b) => { b.disabled = true; });
    try { await fn(col); } finally {
      col.buttons.forEach((b) => {
        if (col.jwt && b === col.jwt.replay) b.disabled = !col.stolen;
        else if (col.jwt && b === col.jwt.thiefRefresh) b.disabled = !col.oldRt;
        else b.disabled = false;
      });
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

const when = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

function showToken(col, token) {
  const j = col.jwt;
  clearInterval(j.timer);
  j.box.hidden = !token;
  j.result.textContent = '';
  delete j.result.dataset.status;
  if (!token) return;
  const [h, p, s] = token.split('.');
  j.parts = { h, p, s };
  j.encH.textContent = h;
  j.encP.textContent = p;
  j.encS.textContent = s;
  j.encP.classList.remove('edited');
  let header, payload;
  try {
    header = JSON.parse(b64urlDecode(h));
    payload = JSON.parse(b64urlDecode(p));
  } catch (e) {
    j.decH.textContent = 'cannot decode: ' + e;
    return;
  }
  j.header = header;
  j.decH.textContent = JSON.stringify(header, null, 1);
  j.edit.value = JSON.stringify(payload, null, 1);
  // Human dates, with the full date and time on hover.
  j.dates.replaceChildren();
  for (const k of ['iat', 'exp']) {
    if (typeof payload[k] !== 'number') continue;
    const d = el('span', 'date', `${k} ${when(payload[k])}`);
    d.title = `${k} = ${payload[k]} = ${new Date(payload[k] * 1000).toString()}`;
    d.dataset.claim = k;
    j.dates.append(d);
  }
  const tick = () => {
    const left = Math.round(payload.exp - Date.now() / 1000);
    j.expiry.textContent = left > 0 ?
      `expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : 'expired';
    j.expiry.classList.toggle('expired', left <= 0);
  };
  tick();
  j.timer = setInterval(tick, 1000);
}

// The middle part of the encoded token follows the edited payload as you type.
function reencode(col) {
  const j = col.jwt;
  try {
    const p = b64urlEncode(JSON.stringify(JSON.parse(j.edit.value)));
    j.encP.textContent = p;
    j.encP.classList.toggle('edited', p !== j.parts.p);
    j.edit.classList.remove('bad');
  } catch (e) {
    j.edit.classList.add('bad');
  }
}

function showVerified(col, r) {
  const j = col.jwt;
  if (r.status !== 200 || !j.header) return;
  j.verified.textContent = `${r.server} verified the signature itself: ${j.header.alg}, key id ` +
    `${j.header.kid || '(none)'}; no store asked.`;
}

// Another payload (and for alg=none another header and no signature): every server must refuse it.
async function tamper(col, algNone) {
  const j = col.jwt;
  let payload;
  try {
    payload = JSON.stringify(JSON.parse(j.edit.value));
  } catch (e) {
    j.result.textContent = 'The payload is not JSON: ' + e.message;
    j.result.className = 'tamper-result fail';
    return;
  }
  const forged = algNone ?
    b64urlEncode('{"alg":"none","typ":"JWT"}') + '.' + b64urlEncode(payload) + '.' :
    j.parts.h + '.' + b64urlEncode(payload) + '.' + j.parts.s;
  const r = await send(col, 'GET', '/profile', { headers: { Authorization: 'Bearer ' + forged },
    credentials: 'omit', note: algNone ? 'alg=none' : 'edited' });
  const ok = r.status === 200;
  j.result.dataset.status = String(r.status);
  j.result.className = 'tamper-result ' + (ok ? 'ok' : 'fail');
  j.result.textContent = (algNone ? 'alg=none: ' : 'Edited token: ') + (ok ? `${r.status}: accepted?!` :
    `${r.status} ${r.data ? r.data.error : ''}: ${r.data ? r.data.message : ''} (${r.server})`);
}

// What a script injected into this page (XSS) could take, in each storage mode.
async function inject(col) {
  const j = col.jwt;
  const stored = localStorage.getItem(STORAGE_KEY);
  const cookies = document.cookie;
  const r = await send(col, 'GET', '/profile', { note: 'injected script' });
  const lines = [];
  j.xss.dataset.stored = stored ? 'token' : 'none';
  j.xss.dataset.fetch = String(r.status);
  if (stored) {
    lines.push(`localStorage.getItem('jwt') → ${stored.slice(0, 16)}…: the token itself. The ` +
      'attacker can send it from anywhere, as Bearer, until it expires.');
  } else {
    lines.push(`localStorage → nothing; document.cookie → "${cookies}": the HttpOnly cookie is ` +
      'invisible to scripts.');
  }
  lines.push(r.status === 200 ?
    `Yet fetch('/jwt/profile') from this page → 200 (${r.server}): the browser attaches the cookie ` +
    'by itself, so the script can act as you while the page is open. SameSite keeps other sites ' +
    'from doing the same, and the login CSRF check guards the login form.' :
    `fetch('/jwt/profile') from this page without the header → ${r.status}: no cookie carries the ` +
    'token in this mode.');
  j.xss.textContent = lines.join(' ');
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
    const b = el('button', 'ctl', s.running ? '■' : '▶');
    b.title = (s.running ? 'Stop ' : 'Start ') + s.name;
    b.setAttribute('aria-label', b.title);
    b.addEventListener('click', () => control(col, s.name, s.running ? 'stop' : 'start', b));
    chip.append(el('span', 'name', s.name), el('span', 'state', s.running ? 'up' : 'down'), b);
    col.servers.append(chip);
  }
}

function renderAll() {
  if (!serverList) return;
  for (const col of Object.values(columns)) {
    const c = serverList.find((x) => x.column === prefix(col));
    if (c) renderServers(col, c.servers);
  }
}

async function refreshServers() {
  try {
    serverList = (await api('GET', '/api/servers')).columns;
    if (/^Server controls/.test(document.getElementById('page-error').textContent)) showPageError('');
    const jwt = columns.jwt;
    if (jwt && !serverList.some((c) => c.column === 'revoke')) {
      jwt.jwt.denylist.disabled = true;
      jwt.jwt.denylist.parentElement.title = 'no deny-list cluster in this set-up';
    }
    renderAll();
  } catch (e) {
    showPageError('Server controls unavailable: ' + e.message);
  }
}

async function control(col, server, action, button) {
  button.disabled = true;
  button.textContent = '…';
  try {
    await api('POST', '/api/' + action, { column: prefix(col), server });
  } catch (e) {
    showPageError(`${action} ${server}: ${e.message}`);
  }
  await refreshServers();
}

// ---- set-up --------------------------------------------------------------------------------

function setTheme(name) {
  document.documentElement.dataset.theme = name;
  document.getElementById('theme').value = name;
}

function setUp() {
  const tpl = document.getElementById('col-body');
  const theme = document.getElementById('theme');
  setTheme(/^(light|dark)$/.test(location.hash.slice(1)) ? location.hash.slice(1) : 'light');
  theme.addEventListener('change', () => setTheme(theme.value));
  localStorage.removeItem(STORAGE_KEY);
  for (const section of document.querySelectorAll('section.col')) {
    section.append(tpl.content.cloneNode(true));
    const q = (s) => section.querySelector(s);
    const col = {
      name: section.dataset.col, section, user: q('.user'), servers: q('.servers'),
      tally: q('.tally'), explain: q('.explain'), counts: { ok: 0, fail: 0 }, codes: [], stolen: null,
    };
    col.buttons = [q('.login'), q('.profile'), q('.logout')];
    if (col.name === 'jwt') {
      section.append(document.getElementById('jwt-body').content.cloneNode(true));
      col.jwt = {
        box: q('.token'), encH: q('.encoded .t-header'), encP: q('.encoded .t-payload'),
        encS: q('.encoded .t-signature'), decH: q('.dec-header'), dates: q('.dates'),
        edit: q('.edit'), result: q('.tamper-result'), expiry: q('.expiry'), timer: 0,
        verified: q('.verified'), storage: q('.storage'), denylist: q('.denylist'),
        replay: q('.replay'), xss: q('.xss-result'), header: null,
        refresh: q('.refresh'), thiefRefresh: q('.thief-refresh'),
      };
      col.jwt.edit.addEventListener('input', () => reencode(col));
      const on = (sel, fn) => {
        const b = q(sel);
        col.buttons.push(b);
        b.addEventListener('click', busy(col, fn));
      };
      on('.one', (c) => profiles(c, 1));
      on('.replay', replay);
      on('.refresh', refresh);
      on('.thief-refresh', thiefRefresh);
      on('.tamper', (c) => tamper(c, false));
      on('.algnone', (c) => tamper(c, true));
      on('.inject', inject);
      // Another storage or another cluster: start again from a fresh login.
      const reset = () => {
        localStorage.removeItem(STORAGE_KEY);
        col.stolen = null;
        col.rt = col.oldRt = null;
        showRefresh(col);
        col.jwt.replay.disabled = true;
        col.jwt.verified.textContent = '';
        col.jwt.xss.textContent = '';
        showToken(col, null);
        renderAll();
      };
      col.jwt.storage.addEventListener('change', reset);
      col.jwt.denylist.addEventListener('change', reset);
    }
    section.append(document.getElementById('log-body').content.cloneNode(true));
    col.log = q('.log');
    col.user.value = DEFAULT_USER[col.name] || 'alice';
    q('.login').addEventListener('click', busy(col, login));
    q('.profile').addEventListener('click', busy(col, (c) => profiles(c, 6)));
    q('.logout').addEventListener('click', busy(col, logout));
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
