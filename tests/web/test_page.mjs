// Drives the teaching page in Debian's headless Chromium (playwright-core, no browser download):
// starts scripts/web.sh up on free ports, trusts the run's certificate by its SPKI hash (no
// "ignore certificate errors"), clicks through every column at 1920x1080, checks what the page
// shows, then checks the layout (four columns in one row, no sideways scrolling) and the JWT
// logout replay at 1366x768 and 1280x720 too, saves screenshots under build/web/ (never a tracked
// file) and tears everything down. Prints "N passed, N failed"; exit 1 on a failure.
// Usage: node tests/web/test_page.mjs   (AUTH_BIN: where the programs are, default bin/;
// SCREENSHOT: the 1920x1080 screenshot's path, default build/web/screenshot.png; the others go
// beside it as screenshot-WxH.png)
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WEB_SH = path.join(ROOT, 'scripts', 'web.sh');
const DEADLINE_MS = 420000;
// Under build/ by default: a test run never rewrites a tracked file.
const SCREENSHOT = process.env.SCREENSHOT || path.join(ROOT, 'build', 'web', 'screenshot.png');
const VIEWPORTS = [[1920, 1080], [1366, 768], [1280, 720]];
let passed = 0, failed = 0;

function check(name, ok, detail = '') {
  if (ok) {
    passed++;
    console.log(`ok    ${name}`);
  } else {
    failed++;
    console.log(`FAIL  ${name}${detail ? ': ' + detail : ''}`);
  }
}

// Runs one group of checks; an exception (a timeout waiting for the page, ...) is one failure.
async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    check(name, false, e.message.split('\n')[0]);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function readEnv(file) {
  const env = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z_0-9]+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

// base64(sha256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list pins.
function spkiHash(certFile) {
  const der = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

// A request outside the browser, trusting the run's CA: for the control API's refusals.
function raw(url, ca, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    // The certificate names localhost and 127.0.0.1: check it against that, whatever Host says.
    const req = https.request(url, { method, headers, ca, servername: 'localhost', timeout: 10000 }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// The column's log, oldest first (the page shows the newest on top). LOG_MAX rows at most.
const LOG_MAX = 12;
const entries = (page, col) => page.$$eval(`section[data-col="${col}"] ol.log li`, (lis) =>
  lis.map((li) => ({ status: Number(li.dataset.status), server: li.dataset.server, path: li.dataset.path,
    code: li.dataset.code, note: li.dataset.note })).reverse());

// Counts every request logged in a column (the list itself keeps only the last LOG_MAX).
async function logged(page, col) {
  return page.$eval(`section[data-col="${col}"]`, (s) => Number(s.dataset.logged || 0));
}

// Waits until the column has logged N requests in all; returns the log.
async function waitEntries(page, col, n) {
  await page.waitForFunction(([c, k]) =>
    Number(document.querySelector(`section[data-col="${c}"]`).dataset.logged || 0) >= k, [col, n],
  { timeout: 30000 });
  return entries(page, col);
}

async function idle(page, col) {
  await page.waitForFunction((c) => !document.querySelector(`section[data-col="${c}"]`)
    .classList.contains('busy'), col, { timeout: 30000 });
}

async function click(page, col, sel) {
  await page.click(`section[data-col="${col}"] ${sel}`);
}

// Logs in and asks for the profile six times; returns [login entry, six profile entries].
async function loginAndSix(page, col) {
  const before = await logged(page, col);
  await click(page, col, 'button.login');
  await waitEntries(page, col, before + 1);
  await idle(page, col);
  await click(page, col, 'button.profile');
  const all = await waitEntries(page, col, before + 7);
  await idle(page, col);
  return [all[all.length - 7], all.slice(-6)];
}

// Clicks SEL in the JWT column, waits until N more requests are logged; returns the new ones.
async function jwtAction(page, sel, n) {
  const before = await logged(page, 'jwt');
  await click(page, 'jwt', sel);
  const all = await waitEntries(page, 'jwt', before + n);
  await idle(page, 'jwt');
  return n ? all.slice(-n) : [];
}

// Log in, log out, and the thief's copy replayed three times: returns the replays.
async function loginLogoutReplay(page) {
  await jwtAction(page, 'button.login', 1);
  await jwtAction(page, 'button.logout', 1);
  return jwtAction(page, 'button.replay', 3);
}

// The page's layout at the current viewport: columns' boxes and the document's width.
function layout(page) {
  return page.evaluate(() => ({
    cols: [...document.querySelectorAll('section.col')].map((c) => {
      const r = c.getBoundingClientRect();
      return { top: Math.round(r.top + scrollY), left: r.left, right: r.right, width: r.width };
    }),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth,
  }));
}

const distinct = (xs) => new Set(xs).size;

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'web-test-'));
  const rundir = path.join(tmp, 'run');
  const port = await freePort();
  let context = null;
  const timer = setTimeout(() => {
    check('the whole test finished in time', false, `${DEADLINE_MS} ms`);
    teardown();
    process.exit(1);
  }, DEADLINE_MS);
  function teardown() {
    spawnSync(WEB_SH, ['down', '--dir', rundir], { stdio: 'ignore', timeout: 60000 });
    // With a sanitizer build (make SANITIZER=address), a report in any program's log fails.
    let logs = [];
    try {
      logs = readdirSync(rundir, { recursive: true }).filter((f) => f.endsWith('.log'));
    } catch { /* up failed before making the directory */ }
    const bad = logs.filter((f) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(
      readFileSync(path.join(rundir, f), 'utf8')));
    check('no sanitizer report in the logs', bad.length === 0, bad.join(', '));
    rmSync(tmp, { recursive: true, force: true });
  }

  try {
    const up = spawnSync(WEB_SH, ['up', '--dir', rundir, '--port', String(port)],
      { encoding: 'utf8', timeout: 120000 });
    check('scripts/web.sh up starts the page', up.status === 0, up.stderr);
    if (up.status !== 0) return;
    check('web.sh up prints the page address', up.stdout.includes(`https://127.0.0.1:${port}/`), up.stdout);
    const env = readEnv(path.join(rundir, 'web.env'));
    const url = env.URL, ca = readFileSync(env.CA);
    const token = readFileSync(env.TOKEN_FILE, 'utf8').trim();

    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1920, height: 1080 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--ignore-certificate-errors-spki-list=${spkiHash(path.join(rundir, 'tls', 'cert.pem'))}`],
    });
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    // Chromium reports every 4xx a fetch gets as a console error: those are the lesson, not bugs.
    // So is a 503 for the server list while webdemo.py is busy stopping a server on a loaded
    // machine (the balancer has no backend for a moment; the page says so and recovers).
    page.on('console', (m) => {
      const url = m.location().url || '';
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4/.test(m.text()) &&
          !(/status of 503/.test(m.text()) && url.endsWith('/api/servers'))) {
        problems.push(`${m.text()} (${m.location().url})`);
      }
    });

    await step('the page loads over HTTPS', async () => {
      const res = await page.goto(url, { waitUntil: 'load' });
      check('the page loads over HTTPS with the run certificate', res.status() === 200, String(res.status()));
      check('the page is served with a Content-Security-Policy',
        /script-src 'self'/.test(res.headers()['content-security-policy'] || ''));
      await page.waitForFunction(() => document.querySelectorAll('.server').length === 12, null,
        { timeout: 15000 });
      check('every column lists its three running servers', (await page.$$eval('.server[data-running="true"]',
        (s) => s.length)) === 12);
      check('the demo users are listed on the page',
        /alice \/ alice-password/.test(await page.textContent('header')));
    });

    await step('memory sessions fail on hops', async () => {
      const [login, six] = await loginAndSix(page, 'memory');
      check('memory: login answers 200', login.status === 200, JSON.stringify(login));
      check('memory: the six requests hop over all three servers',
        distinct(six.map((e) => e.server)) === 3, JSON.stringify(six));
      const ok = six.filter((e) => e.status === 200), bad = six.filter((e) => e.status === 401);
      const hops = six.filter((e) => e.server !== login.server);
      check('memory: every other server answers 401', hops.length >= 3 && hops.every((e) => e.status === 401),
        JSON.stringify(six));
      check('memory: the first hop finds no session (invalid_session)', six[0].server !== login.server &&
        six[0].code === 'invalid_session', JSON.stringify(six[0]));
      // That 401 deleted the cookie: from then on even the login server cannot tell who it is.
      check('memory: only the login server ever answers 200', ok.every((e) => e.server === login.server) &&
        ok.length + bad.length === 6, JSON.stringify({ login, six }));
      const fail = Number(await page.getAttribute('section[data-col="memory"] .tally', 'data-fail'));
      check('memory: the tally shows the failures', fail === bad.length, String(fail));
      check('memory: failed rows are shown as failures', (await page.$$(
        'section[data-col="memory"] ol.log li.fail[data-status="401"]')).length >= 3);
      // The cascade, as a browser lives it: after the first 401 the cookie is gone.
      const later = six.slice(six.findIndex((e) => e.code === 'invalid_session') + 1);
      check('memory: after the first 401 the browser sends no cookie (not_authenticated)',
        later.length > 0 && later.every((e) => e.code === 'not_authenticated'), JSON.stringify(six));
      const explain = await page.textContent('section[data-col="memory"] .explain');
      check('memory: the page explains the cascade and the other clients\' numbers',
        await page.isVisible('section[data-col="memory"] .explain') &&
        /deleted the cookie/.test(explain) && /loadgen ignores Set-Cookie on 4xx, so it keeps its cookie/.test(explain),
        explain);
    });

    await step('redis sessions work everywhere', async () => {
      const [login, six] = await loginAndSix(page, 'redis');
      check('redis: login answers 200', login.status === 200, JSON.stringify(login));
      check('redis: all six profile requests answer 200', six.every((e) => e.status === 200), JSON.stringify(six));
      check('redis: ... from all three servers', distinct(six.map((e) => e.server)) === 3, JSON.stringify(six));
    });

    await step('jwt works everywhere and refuses a tampered token', async () => {
      const [login, six] = await loginAndSix(page, 'jwt');
      check('jwt: login answers 200', login.status === 200, JSON.stringify(login));
      check('jwt: all six profile requests answer 200', six.every((e) => e.status === 200), JSON.stringify(six));
      check('jwt: ... from all three servers', distinct(six.map((e) => e.server)) === 3, JSON.stringify(six));
      const col = 'section[data-col="jwt"]';
      check('jwt: the token panel is shown', await page.isVisible(`${col} .token`));
      const parts = await page.$$eval(`${col} .encoded span`, (s) => s.map((x) => [x.className, x.textContent]));
      check('jwt: the encoded token is shown in three coloured parts',
        parts.length === 3 && parts.every(([c, t]) => /^t-/.test(c) && /^[A-Za-z0-9_-]+$/.test(t)),
        JSON.stringify(parts));
      const header = JSON.parse(await page.textContent(`${col} .dec-header`));
      const payload = JSON.parse(await page.inputValue(`${col} textarea.edit`));
      check('jwt: the decoded header says HS256', header.alg === 'HS256', JSON.stringify(header));
      check('jwt: the decoded payload names the user', payload.sub === 'bob', JSON.stringify(payload));
      const exp = await page.getAttribute(`${col} .dates .date[data-claim="exp"]`, 'title');
      check('jwt: exp as a human date on hover', exp && exp.includes(String(payload.exp)) &&
        /\d\d:\d\d:\d\d/.test(exp), exp);
      const verified = await page.textContent(`${col} .verified`);
      check('jwt: the page says which server verified with which key id',
        /^app\d verified the signature/.test(verified) && verified.includes(header.kid), verified);
      const t1 = await page.textContent(`${col} .expiry`);
      await page.waitForTimeout(2100);
      const t2 = await page.textContent(`${col} .expiry`);
      check('jwt: the expiry counts down', /^expires in \d+:\d\d$/.test(t1) && t1 !== t2, `${t1} / ${t2}`);
      const before = await page.textContent(`${col} .encoded .t-payload`);
      const forged = Object.assign({}, payload, { role: 'admin' });
      await page.fill(`${col} textarea.edit`, JSON.stringify(forged, null, 1));
      const after = await page.textContent(`${col} .encoded .t-payload`);
      check('jwt: the payload is re-encoded live while editing', after !== before &&
        JSON.parse(Buffer.from(after, 'base64url').toString()).role === 'admin', after);
      await jwtAction(page, 'button.tamper', 1);
      await page.evaluate(() => scrollTo(0, 0));
      const st = await page.getAttribute(`${col} .tamper-result`, 'data-status');
      const text = await page.textContent(`${col} .tamper-result`);
      check('jwt: the tampered token gets 401 invalid_token', st === '401' && /invalid_token/.test(text), `${st} ${text}`);
      const box = await page.$eval(`${col} .tamper-result`, (e) => e.getBoundingClientRect().bottom);
      check('jwt: at 1920x1080 the tamper result is visible without scrolling', box > 0 && box <= 1080, String(box));
      const last = (await entries(page, 'jwt')).at(-1);
      check('jwt: the tampered request is in the list as a 401', last.status === 401, JSON.stringify(last));
      const none = await jwtAction(page, 'button.algnone', 1);
      check('jwt: the one-click alg=none forgery gets 401', none[0].status === 401 && none[0].note === 'alg=none',
        JSON.stringify(none));
      const one = await jwtAction(page, 'button.one', 1);
      check('jwt: Profile x1 sends one request', one.length === 1 && one[0].status === 200, JSON.stringify(one));
    });

    await step('jwt: logout cannot take a stolen token back, the deny-list can', async () => {
      const replays = await loginLogoutReplay(page);
      check('jwt: after logout the thief\'s copy gets 200 on every server',
        replays.every((e) => e.status === 200) && distinct(replays.map((e) => e.server)) === 3,
        JSON.stringify(replays));
      const words = await page.textContent('section[data-col="jwt"]');
      check('jwt: the column never speaks of a "session"', !/session/i.test(words), words.match(/.{30}session.{30}/i));
      await page.check('section[data-col="jwt"] input.denylist');
      const revoked = await loginLogoutReplay(page);
      check('jwt: with the deny-list the copy gets 401 token_revoked on every server',
        revoked.every((e) => e.status === 401 && e.code === 'token_revoked') &&
        distinct(revoked.map((e) => e.server)) === 3, JSON.stringify(revoked));
      // Refresh tokens (the same cluster): rotation, then the thief's replay kills the login.
      await jwtAction(page, 'button.login', 1);
      const [ref] = await jwtAction(page, 'button.refresh', 1);
      check('jwt: Refresh gives a new pair (200)', ref.status === 200 && ref.path === '/refresh', JSON.stringify(ref));
      const [thief] = await jwtAction(page, 'button.thief-refresh', 1);
      check('jwt: the thief\'s spent refresh token gets 401 refresh_reused',
        thief.status === 401 && thief.code === 'refresh_reused', JSON.stringify(thief));
      const [again] = await jwtAction(page, 'button.refresh', 1);
      check('jwt: then the owner\'s refresh gets 401 refresh_revoked',
        again.status === 401 && again.code === 'refresh_revoked', JSON.stringify(again));
      const dead = await jwtAction(page, 'button.profile', 6);
      check('jwt: ... and the family\'s access token gets token_revoked on every server',
        dead.every((e) => e.code === 'token_revoked') && distinct(dead.map((e) => e.server)) === 3,
        JSON.stringify(dead));
      await page.uncheck('section[data-col="jwt"] input.denylist');
    });

    await step('jwt: what a script injected into the page can read', async () => {
      const col = 'section[data-col="jwt"]';
      await jwtAction(page, 'button.login', 1);
      await jwtAction(page, 'button.inject', 1);
      let stored = await page.getAttribute(`${col} .xss-result`, 'data-stored');
      let text = await page.textContent(`${col} .xss-result`);
      check('xss: with localStorage the script reads the token itself', stored === 'token' &&
        /the token itself/.test(text), text);
      await page.selectOption(`${col} select.storage`, 'cookie');
      await jwtAction(page, 'button.login', 1);
      const one = await jwtAction(page, 'button.one', 1);
      check('xss: in cookie mode the browser attaches the HttpOnly cookie (200)', one[0].status === 200,
        JSON.stringify(one));
      await jwtAction(page, 'button.inject', 1);
      stored = await page.getAttribute(`${col} .xss-result`, 'data-stored');
      const fetched = await page.getAttribute(`${col} .xss-result`, 'data-fetch');
      text = await page.textContent(`${col} .xss-result`);
      check('xss: with the HttpOnly cookie the script reads nothing, yet its request gets 200',
        stored === 'none' && fetched === '200' && /document\.cookie → ""/.test(text) && /SameSite/.test(text), text);
      check('xss: the page holds no token in localStorage in cookie mode',
        (await page.evaluate(() => localStorage.getItem('jwt'))) === null);
      await page.selectOption(`${col} select.storage`, 'local');
    });

    await step('sticky sessions move when the server stops', async () => {
      const [login, six] = await loginAndSix(page, 'sticky');
      check('sticky: login answers 200', login.status === 200, JSON.stringify(login));
      check('sticky: all six requests stay on the login server with 200',
        six.every((e) => e.status === 200 && e.server === login.server), JSON.stringify(six));
      const pinned = login.server;
      const chip = `section[data-col="sticky"] .server[data-server="${pinned}"]`;
      await page.click(`${chip} button.ctl`);
      await page.waitForSelector(`${chip}[data-running="false"]`, { timeout: 30000 });
      check('sticky: the stop control stops the pinned server', true);
      await click(page, 'sticky', 'button.profile');
      const after = (await waitEntries(page, 'sticky', 13)).slice(-6);
      check('sticky: after the stop, another server answers', after.every((e) => e.server !== pinned &&
        e.server !== ''), JSON.stringify(after));
      check('sticky: ... and it does not know the session (401)', after.every((e) => e.status === 401),
        JSON.stringify(after));
      check('sticky: the user stays on the one new server', distinct(after.map((e) => e.server)) === 1,
        JSON.stringify(after));
      // The screenshot shows the lesson: the stopped server, the moved user, the 401s.
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });
      await page.click(`${chip} button.ctl`);
      await page.waitForSelector(`${chip}[data-running="true"]`, { timeout: 30000 });
      check('sticky: the start control brings the server back', true);
    });

    for (const [w, h] of VIEWPORTS) {
      await step(`layout at ${w}x${h}`, async () => {
        await page.setViewportSize({ width: w, height: h });
        await page.evaluate(() => scrollTo(0, 0));
        const l = await layout(page);
        check(`${w}x${h}: four columns in one row`, l.cols.length === 4 &&
          l.cols.every((c) => c.top === l.cols[0].top && c.width > 200), JSON.stringify(l.cols));
        check(`${w}x${h}: no horizontal overflow`, l.scrollWidth <= l.innerWidth &&
          l.cols.every((c) => c.right <= l.innerWidth), `${l.scrollWidth} > ${l.innerWidth}`);
        const replays = await loginLogoutReplay(page);
        check(`${w}x${h}: the JWT replay after logout shows 200s`,
          replays.length === 3 && replays.every((e) => e.status === 200), JSON.stringify(replays));
        await page.evaluate(() => scrollTo(0, 0));
        await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, `-${w}x${h}.png`) });
      });
    }

    await step('the control API refuses what is not the page', async () => {
      const api = url + 'api/stop';
      const body = JSON.stringify({ column: 'memory', server: 'app1' });
      const origin = url.replace(/\/$/, '');
      const json = { 'Content-Type': 'application/json' };
      let r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin }, body });
      check('api: no token is 401', r.status === 401, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin, 'X-Demo-Token': token + 'x' }, body });
      check('api: a wrong token is 401', r.status === 401, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: 'https://evil.example', 'X-Demo-Token': token }, body });
      check('api: another Origin is 403', r.status === 403, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin, Host: 'rebind.example:' + port, 'X-Demo-Token': token }, body });
      check('api: another Host is refused', r.status === 421, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin, 'X-Demo-Token': token, 'Sec-Fetch-Site': 'cross-site' }, body });
      check('api: a cross-site fetch is 403', r.status === 403, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin, 'X-Demo-Token': token },
        body: JSON.stringify({ column: 'memory', server: '--dir=/' }) });
      check('api: an unknown server is 400', r.status === 400, `${r.status} ${r.body}`);
      r = await raw(api, ca, { method: 'POST', headers: { ...json, Origin: origin, 'X-Demo-Token': token },
        body: 'x'.repeat(5000) });
      check('api: a large body is 413', r.status === 413, `${r.status} ${r.body}`);
      r = await raw(url + 'api/servers', ca, { headers: { 'X-Demo-Token': token } });
      check('api: nothing was stopped by the refused calls', r.status === 200 &&
        JSON.parse(r.body).columns.every((c) => c.servers.every((s) => s.running)), r.body);
      r = await raw(url + '..%2fscripts%2fwebdemo.py', ca);
      check('static: no path outside web/', r.status === 404, String(r.status));
      r = await raw(url + 'nothing/', ca);
      check('static: an unknown path is 404', r.status === 404, String(r.status));
    });

    check('no JavaScript errors on the page', problems.length === 0, problems.join(' | '));
  } finally {
    clearTimeout(timer);
    if (context) await context.close().catch(() => {});
    teardown();
  }
}

main().catch((e) => check('the test ran', false, e.stack)).finally(() => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
