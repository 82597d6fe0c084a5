// Browser test of the activation link, in headless Chromium driven by
// playwright-core: it builds and starts the local stack (`local run`, the
// same as `make run`, on free ports), creates an account and a user,
// asks for an activation email, reads the link from the SES emulator's
// store, and checks, as a person would, that opening the page activates
// nothing, that its button does, and that the used link then shows the
// invalid-link message.
//
//   node --test infra/browser/activation.test.mjs     (make test-browser)
//
// It needs Chromium at /usr/bin/chromium (Debian: apt-get install -y
// chromium), or CHROMIUM_PATH; without it the test fails and says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const table = 'browser-test';
const domain = 'browser.test';
const admin = `admin@${domain}`;

let work; // temporary directory: the local binary, Chromium's profile
let bin; // the built `local` command
let stack; // the running `local run`
let urls; // {dynamodb, api, email}
let context; // the browser

function localEnv() {
  const env = { ...process.env, TABLE_NAME: table, DYNAMODB_ENDPOINT: urls?.dynamodb ?? '' };
  delete env.SES_ENDPOINT;
  return env;
}

// local runs a `local` operator command and returns its JSON output.
function local(...args) {
  const out = execFileSync(bin, args, { cwd: root, env: localEnv(), encoding: 'utf8' });
  return JSON.parse(out);
}

// startStack runs `local run` on free ports and resolves with the URLs it
// prints.
function startStack() {
  // Every part on a free port, so that a `make run` of the developer's
  // own does not get in the way.
  const env = { ...localEnv(), API_ADDR: '127.0.0.1:0', DYNAMODB_PORT: '0', SES_PORT: '0', SQS_PORT: '0', S3_PORT: '0' };
  delete env.DYNAMODB_ENDPOINT;
  stack = spawn(bin, ['run'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`local run printed no addresses within 120 s:\n${output}`)), 120_000);
    const onData = (chunk) => {
      output += chunk;
      const ddb = output.match(/^DynamoDB:\s+(\S+)/m);
      const api = output.match(/^API:\s+(\S+)/m);
      const email = output.match(/^Email:\s+(\S+)/m);
      if (ddb && api && email) {
        clearTimeout(timer);
        resolve({ dynamodb: ddb[1], api: api[1], email: email[1] });
      }
    };
    stack.stdout.setEncoding('utf8').on('data', onData);
    stack.stderr.setEncoding('utf8').on('data', (c) => { output += c; });
    stack.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`local run exited with ${code}:\n${output}`));
    });
  });
}

async function stopStack() {
  if (!stack || stack.exitCode !== null) return;
  const exited = new Promise((resolve) => stack.once('exit', resolve));
  stack.kill('SIGINT'); // Ctrl-C: run stops DynamoDB Local and the SES emulator
  const timer = setTimeout(() => stack.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

async function api(method, route, token, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(urls.api + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

// mailTo waits for the SES emulator to store an email to address.
async function mailTo(address) {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const store = await (await fetch(`${urls.email}/store`)).json();
    const found = store.emails.filter((e) => e.destination.to.includes(address));
    if (found.length > 0) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no email to ${address} within 30 s`);
}

before(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary`);
  }
  work = mkdtempSync(path.join(tmpdir(), 'license-admin-browser-'));
  bin = path.join(work, 'local');
  execFileSync('go', ['build', '-o', bin, './infra/local'], { cwd: root, stdio: 'inherit' });
  urls = await startStack();
  context = await chromium.launchPersistentContext(path.join(work, 'profile'), {
    executablePath: chromiumPath,
    headless: true,
    // An English browser: the page of a working link must be in its
    // user's language (French here), that of a used link in the browser's.
    locale: 'en-US',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  await stopStack();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('an activation link opened in Chromium activates on the button only, once', { timeout: 300_000 }, async (t) => {
  const { accountId } = local('account', 'create', '--name', 'Browser', '--admin', admin);
  assert.ok(accountId);
  const { token } = local('token', admin);

  // Markup in the name: the email's HTML part must show it as text.
  const firstName = 'Léa <b>&amp;';
  const created = await api('POST', '/v1/users', token, { email: `lea@${domain}`, firstName, lastName: 'Martin', language: 'fr', role: 'user' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const userId = created.body.id;
  const status = async () => (await api('GET', `/v1/users/${userId}`, token)).body.status;
  assert.equal(await status(), 'pending');

  const sent = await api('POST', `/v1/users/${userId}/activation-email`, token);
  assert.equal(sent.status, 202, JSON.stringify(sent.body));

  const [mail] = await mailTo(`lea@${domain}`);
  assert.equal(mail.subject, 'Activez votre compte License Admin');
  const link = mail.body.text.match(/(\S+\/activate\?token=[A-Za-z0-9_-]{43})/)?.[1];
  assert.ok(link, `no activation link in:\n${mail.body.text}`);
  assert.ok(link.startsWith(`${urls.api}/activate?token=`), `link ${link} is not on the API ${urls.api}`);

  await t.test('the email\'s HTML part renders in French, the name as text, the button to the link', async () => {
    assert.ok(mail.body.text.includes(`Bonjour ${firstName},`), mail.body.text);
    const page = await context.newPage();
    await page.setContent(mail.body.html, { waitUntil: 'load' });
    assert.equal(await page.getAttribute('html', 'lang'), 'fr');
    assert.equal(await page.title(), mail.subject);
    assert.equal(await page.locator('h1').innerText(), 'Activez votre compte');
    assert.ok(await page.getByText(`Bonjour ${firstName},`, { exact: true }).isVisible());
    assert.equal(await page.locator('b').count(), 0, 'the name\'s markup became an element');
    const hrefs = await page.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(hrefs, [link, link]);
    assert.ok(await page.getByRole('link', { name: link }).isVisible());
    await page.close();
  });

  const problems = [];
  const watch = (page) => {
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
  };

  await t.test('the page loads in its user\'s French, not the browser\'s English, with its security headers and activates nothing', async () => {
    const page = await context.newPage();
    watch(page);
    const res = await page.goto(link, { waitUntil: 'load' });
    assert.equal(res.status(), 200);
    const h = res.headers();
    assert.match(h['content-security-policy'], /default-src 'none'; script-src 'sha256-/);
    assert.equal(h['referrer-policy'], 'no-referrer');
    assert.equal(h['cache-control'], 'no-store');
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(await page.getAttribute('html', 'lang'), 'fr');
    assert.match(await page.title(), /^Activez votre compte/);
    assert.equal(await page.locator('h1').first().innerText(), 'Activez votre compte');
    assert.equal(await page.getAttribute('#activate', 'data-token'), new URL(link).searchParams.get('token'));
    assert.ok(await page.getByRole('button', { name: 'Activer mon compte' }).isVisible());
    await page.waitForTimeout(1000); // a scanner lingers: still nothing
    assert.equal(await status(), 'pending');
    await page.close();
  });

  await t.test('the button activates the account and says so', async () => {
    const page = await context.newPage();
    watch(page);
    await page.goto(link);
    await page.getByRole('button', { name: 'Activer mon compte' }).click();
    const success = page.locator('#success');
    await success.waitFor({ state: 'visible', timeout: 15_000 });
    assert.match(await success.innerText(), /Votre compte est activé/);
    assert.equal(await page.locator('#activate').isVisible(), false);
    if (process.env.BROWSER_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.BROWSER_SCREENSHOTS, 'activated.png') });
    assert.equal(await status(), 'active');
    await page.close();
  });

  await t.test('the used link shows the invalid-link message, in the browser\'s English', async () => {
    const page = await context.newPage();
    watch(page);
    await page.goto(link);
    if (process.env.BROWSER_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.BROWSER_SCREENSHOTS, 'used-link.png') });
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.getByRole('button', { name: /Activate my account/ }).click();
    const invalid = page.locator('#invalid');
    await invalid.waitFor({ state: 'visible', timeout: 15_000 });
    const text = await invalid.innerText();
    assert.match(text, /invalid, already used or expired/);
    if (process.env.BROWSER_SCREENSHOTS) await page.screenshot({ path: path.join(process.env.BROWSER_SCREENSHOTS, 'invalid.png') });
    assert.equal(await status(), 'active');
    await page.close();
  });

  // The 410 of the used link is the one expected console error; nothing
  // else (a CSP violation would be one).
  const unexpected = problems.filter((p) => !/status of 410/.test(p));
  assert.deepEqual(unexpected, [], `console errors: ${problems.join('\n')}`);
});
