// Drives the teaching page in Debian's headless Chromium (playwright-core, no browser download):
// starts scripts/web.sh up on free ports, trusts the run's certificate by its SPKI hash (no
// "ignore certificate errors"), clicks through every column, checks what the page shows, saves
// build/web/screenshot.png and tears everything down. Prints "N passed, N failed"; exit 1 on a failure.
// Usage: node tests/web/test_page.mjs   (AUTH_BIN: where the programs are, default bin/;
// SCREENSHOT: where the screenshot goes, default build/web/screenshot.png)
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WEB_SH = path.join(ROOT, 'scripts', 'web.sh');
const DEADLINE_MS = 240000;
// Under build/ by default: a test never rewrites a tracked file (`make screenshot` updates the
// README's web/screenshot.png on purpose).
const SCREENSHOT = process.env.SCREENSHOT || path.join(ROOT, 'build', 'web', 'screenshot.png');
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

const entries = (page, col) => page.$$eval(`section[data-col="${col}"] ol.log li`, (lis) =>
  lis.map((li) => ({ status: Number(li.dataset.status), server: li.dataset.server, path: li.dataset.path,
    code: li.dataset.code })));

async function waitEntries(page, col, n) {
  await page.waitForFunction(([c, k]) =>
    document.querySelectorAll(`section[data-col="${c}"] ol.log li`).length >= k, [col, n],
  { timeout: 30000 });
  return entries(page, col);
}

async function click(page, col, sel) {
  await page.click(`section[data-col="${col}"] ${sel}`);
}

// Logs in and asks for the profile six times; returns [login entry, six profile entries].
async function loginAndSix(page, col) {
  const before = (await entries(page, col)).length;
  await click(page, col, 'button.login');
  await waitEntries(page, col, before + 1);
  await page.waitForFunction((c) => !document.querySelector(`section[data-col="${c}"]`)
    .classList.contains('busy'), col);
  await click(page, col, 'button.profile');
  const all = await waitEntries(page, col, Math.min(before + 7, 14));
  return [all[all.length - 7], all.slice(-6)];
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
    page.on('console', (m) => {
      if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4/.test(m.text())) {
        problems.push(m.text());
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
      const payload = JSON.parse(await page.textContent(`${col} .dec-payload`));
      check('jwt: the decoded header says HS256', header.alg === 'HS256', JSON.stringify(header));
      check('jwt: the decoded payload names the user', payload.sub === 'bob' || payload.username === 'bob',
        JSON.stringify(payload));
      const t1 = await page.textContent(`${col} .expiry`);
      await page.waitForTimeout(2100);
      const t2 = await page.textContent(`${col} .expiry`);
      check('jwt: the expiry counts down', /^expires in \d+:\d\d$/.test(t1) && t1 !== t2, `${t1} / ${t2}`);
      const forged = Object.assign({}, payload, { role: 'admin' });
      await page.fill(`${col} textarea.edit`, JSON.stringify(forged, null, 2));
      await page.click(`${col} button.tamper`);
      await page.waitForFunction(() => document.querySelector('section[data-col="jwt"] .tamper-result')
        .dataset.status, null, { timeout: 15000 });
      const st = await page.getAttribute(`${col} .tamper-result`, 'data-status');
      const text = await page.textContent(`${col} .tamper-result`);
      check('jwt: the tampered token gets 401 invalid_token', st === '401' && /invalid_token/.test(text), `${st} ${text}`);
      const last = (await entries(page, 'jwt')).at(-1);
      check('jwt: the tampered request is in the list as a 401', last.status === 401, JSON.stringify(last));
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
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await page.click(`${chip} button.ctl`);
      await page.waitForSelector(`${chip}[data-running="true"]`, { timeout: 30000 });
      check('sticky: the start control brings the server back', true);
    });

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
