// Browser tests of the portal against a running pkiaasd (started by
// tests/integration/test_portal.py, which passes a JSON file of facts).
// playwright-core drives Debian's chromium; it never downloads a browser.
// Prints "ok <step>" per step; exits non-zero at the first failure.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const URL0 = cfg.url;
const SHOTS = cfg.shots;
mkdirSync(SHOTS, { recursive: true });

function b32decode(s) {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, val = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    val = (val << 5) | a.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((val >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 (SHA-1, 6 digits, 30 s) for the step `offset` steps from now. */
export function totp(secret, offset = 0) {
  return totpAt(secret, Math.floor(Date.now() / 1000 / 30) + offset);
}

/** The code of the next step `who` has not used yet (the server takes each
 * step once, in increasing order, within one step of its clock): the current
 * step or the one after, waiting while even that would be too far ahead.
 * A code chosen this way stays valid when a step boundary passes before the
 * server checks it, however slow the machine. */
async function nextCode(who) {
  for (;;) {
    const now = Math.floor(Date.now() / 1000 / 30);
    const s = Math.max(now, (who.last ?? -Infinity) + 1);
    if (s <= now + 1) {
      who.last = s;
      return totpAt(who.secret, s);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function totpAt(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', b32decode(secret)).update(msg).digest();
  const o = h[h.length - 1] & 15;
  const n = ((h[o] & 127) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1000000).padStart(6, '0');
}

const browser = await chromium.launch({
  executablePath: cfg.chromium || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
const facts = {};
const pageErrors = [];

async function newPage(width = 1280) {
  const ctx = await browser.newContext({ viewport: { width, height: 900 }, acceptDownloads: true });
  const page = await ctx.newPage();
  page.setDefaultTimeout(cfg.timeoutMs || 30000);
  page.on('pageerror', (e) => {
    console.log(`pageerror: ${e.message}`);
    pageErrors.push(e.message);
  });
  // a Content-Security-Policy violation would break the app silently: fail on it
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
  });
  return page;
}

async function step(name, fn) {
  if (failed) return;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    try {
      if (page) await shot(page, 'FAILED-step'); // what the page showed when the step failed
    } catch {
      /* no page */
    }
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

/** Runs a program; throws with its output when it fails. */
function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, timeout: 120000, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${r.stdout} ${r.stderr} ${r.error || ''}`);
  return r.stdout;
}

/** Polls `fn` until it returns true (5 s). */
async function until(fn, what) {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

async function noOverflow(page, what) {
  const w = await page.evaluate(() => {
    const cw = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > cw + 1)
      .slice(0, 8)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
    return [document.documentElement.scrollWidth, cw, wide.join(' ')];
  });
  expect(w[0] <= w[1] + 1, `${what}: no horizontal overflow at ${w[1]} px (scrollWidth ${w[0]}; ${w[2]})`);
}

async function download(page, click) {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()]);
  const p = join(SHOTS, `dl-${dl.suggestedFilename()}`);
  await dl.saveAs(p);
  return { name: dl.suggestedFilename(), data: readFileSync(p) };
}

/** Signs in with password + the next unused TOTP step. */
async function login(page, who) {
  await page.goto(`${URL0}/portal/`);
  await page.getByLabel('Partition (account id)').fill(cfg.partition);
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByLabel('Authenticator code').fill(await nextCode(who));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('partition').waitFor();
}

const owner = { email: cfg.email, password: 'owner portal password 1' };
let page;

await step('entry page at / and SPA fallback', async () => {
  page = await newPage();
  await page.goto(`${URL0}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  expect(new URL(page.url()).pathname === '/portal/', `redirected to /portal/ (got ${page.url()})`);
  await shot(page, 'login');
});

await step('first sign-in: one-time password, own password, TOTP enrolment', async () => {
  await page.getByLabel('Partition (account id)').fill(cfg.partition);
  await page.getByLabel('Email').fill(owner.email);
  await page.getByLabel('Password', { exact: true }).fill(cfg.oneTimePassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Choose your password' }).waitFor();
  await page.getByLabel('New password', { exact: true }).fill(owner.password);
  await page.getByLabel('Repeat new password').fill(owner.password);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByText('Shown once.').waitFor();
  owner.secret = (await page.getByTestId('value-TOTP secret').textContent()).trim();
  expect(/^[A-Z2-7]+=*$/.test(owner.secret), 'a base32 TOTP secret');
  await shot(page, 'totp-setup');
  await page.getByLabel('Authenticator code').fill(await nextCode(owner));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByText('Your account is set up').waitFor();
  await page.getByLabel('Authenticator code').fill(await nextCode(owner));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('partition').waitFor();
  expect((await page.getByTestId('partition').textContent()) === cfg.partition, 'the partition is shown');
});

await step('home: inventory and getting started', async () => {
  await page.getByTestId('inventory').getByTestId('certs-purchased').waitFor();
  const purchased = await page.getByTestId('certs-purchased').textContent();
  expect(purchased === String(cfg.certsPurchased), `purchased certificates ${purchased}`);
  await page.getByRole('heading', { name: 'Getting started' }).waitFor();
  await shot(page, 'home');
});

await step('reload keeps the session; a client route loads directly', async () => {
  await page.goto(`${URL0}/portal/cas`);
  await page.getByRole('heading', { name: 'Certificate Authorities' }).waitFor();
});

await step('create a root CA and an issuing CA', async () => {
  await page.getByRole('button', { name: 'Create root CA' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Identifier').fill('e2e-root');
  await d.getByLabel('Friendly name').fill('E2E Root');
  await d.getByLabel('Subject DN').fill('CN=E2E Root,O=pkiaas tests');
  await d.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-ca="e2e-root"]').waitFor();
  await page.getByRole('button', { name: 'Create issuing CA' }).click();
  await d.getByLabel('Identifier').fill('e2e-issuing');
  await d.getByLabel('Friendly name').fill('E2E Issuing');
  await d.getByLabel('Subject DN').fill('CN=E2E Issuing,O=pkiaas tests');
  expect((await d.getByLabel('Parent CA').inputValue()) === 'e2e-root', 'the selected root is the parent');
  await d.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-ca="e2e-issuing"]').waitFor();
  await page.getByRole('region', { name: 'CA details' }).getByText('subjectKeyIdentifier').waitFor();
  await shot(page, 'cas');
  const f = await download(page, () => page.getByRole('button', { name: 'Download certificate' }).click());
  expect(f.data.toString().includes('BEGIN CERTIFICATE'), 'a PEM CA certificate');
});

await step('intermediate CA; external root by file upload; CA under it: CSR out, certificate in', async () => {
  const d = page.getByRole('dialog');
  await page.getByRole('button', { name: 'Create intermediate CA' }).click();
  await d.getByLabel('Identifier').fill('e2e-inter');
  await d.getByLabel('Parent CA').selectOption('e2e-root');
  await d.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-ca="e2e-inter"]').waitFor();
  if (!cfg.externalRoot) return;
  await page.getByRole('button', { name: 'Import external root' }).click();
  await d.getByLabel('Identifier').fill('e2e-ext');
  await d.getByLabel('Friendly name').fill('On-prem root');
  await d.getByLabel('Root certificate file').setInputFiles(cfg.externalRoot.cert);
  await until(async () => (await d.getByLabel('Root certificate (PEM)').inputValue()).includes('BEGIN CERTIFICATE'), 'the file fills the PEM');
  await d.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-ca="e2e-ext"]').waitFor();
  await page.getByRole('button', { name: 'Create issuing CA' }).click();
  await d.getByLabel('Identifier').fill('e2e-onprem');
  await d.getByLabel('Parent CA').selectOption('e2e-ext');
  await d.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-ca="e2e-onprem"]').waitFor();
  await page.getByRole('region', { name: 'CA details' }).getByText('pending', { exact: true }).waitFor();
  const csr = await download(page, () => page.getByRole('button', { name: 'Download CSR' }).click());
  expect(csr.data.toString().includes('BEGIN CERTIFICATE REQUEST'), 'a PEM CSR');
  const csrPath = join(SHOTS, 'onprem.csr'), ext = join(SHOTS, 'onprem.ext'), out = join(SHOTS, 'onprem.pem');
  writeFileSync(csrPath, csr.data);
  writeFileSync(ext, 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  execFileSync('openssl', ['x509', '-req', '-in', csrPath, '-CA', cfg.externalRoot.cert, '-CAkey', cfg.externalRoot.key,
    '-set_serial', '4242', '-days', '365', '-sha256', '-extfile', ext, '-out', out]);
  await page.getByRole('button', { name: 'Import issuing certificate' }).click();
  await d.getByLabel('Certificate file').setInputFiles(out);
  await until(async () => (await d.getByLabel('Certificate (PEM)').inputValue()).includes('BEGIN CERTIFICATE'), 'the file fills the PEM');
  await d.getByRole('button', { name: 'Import' }).click();
  await d.waitFor({ state: 'detached' });
  await page.locator('[data-ca="e2e-onprem"]').click();
  await page.getByRole('region', { name: 'CA details' }).getByRole('button', { name: 'Download chain' }).waitFor();
  await page.locator('[data-ca="e2e-issuing"]').click();
});

await step('keyboard: tree arrows and Enter, dialog Escape returns focus', async () => {
  await page.locator('[data-ca="e2e-root"]').focus();
  await page.keyboard.press('ArrowDown');
  const next = await page.evaluate(() => document.activeElement?.getAttribute('data-ca'));
  expect(next && next !== 'e2e-root', `ArrowDown moves to the next CA (${next})`);
  await page.keyboard.press('Enter');
  await page.getByRole('region', { name: 'CA details' }).getByRole('heading', { level: 2 }).waitFor();
  const create = page.getByRole('button', { name: 'Create root CA' });
  await create.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  await page.waitForFunction(() => document.activeElement?.tagName === 'INPUT' && !!document.activeElement.closest('[role=dialog]'), null, { timeout: 5000 });
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await page.waitForFunction(() => document.activeElement?.textContent === 'Create root CA', null, { timeout: 5000 });
});

await step('CA page: assign profiles', async () => {
  await page.locator('[data-ca="e2e-issuing"]').click();
  await page.getByRole('link', { name: 'Open CA page' }).click();
  await page.getByRole('tab', { name: 'Certificate Profiles' }).click();
  for (const p of ['privatessl-tls-server', 'privatessl-p12-tls-server', 'est-tls-client', 'mdmws-digital-signature',
    'scep-tls-client', 'cmp-tls-client']) {
    await page.getByLabel('Add profile').selectOption(p);
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('link', { name: p, exact: true }).waitFor();
  }
  await shot(page, 'ca-profiles');
});

await step('issue from a CSR with a SAN row, download it', async () => {
  await page.getByRole('button', { name: 'Issue certificate' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Profile').selectOption('privatessl-tls-server');
  await d.getByLabel('CSR (PEM)').fill(cfg.csr);
  await d.getByRole('button', { name: 'Add SAN' }).click();
  await d.getByLabel('SAN 1 value').fill('www.e2e.example');
  await d.getByRole('button', { name: 'Issue', exact: true }).click();
  await d.getByText('Certificate issued').waitFor();
  facts.serial = (await d.getByTestId('issued-serial').textContent()).trim();
  const f = await download(page, () => d.getByRole('button', { name: 'Download certificate (PEM)' }).click());
  expect(f.data.toString().includes('BEGIN CERTIFICATE'), 'a PEM certificate');
  writeFileSync(join(SHOTS, 'issued.pem'), f.data);
  await d.getByRole('button', { name: 'Close', exact: true }).click();
});

await step('issue a PKCS#12 (server-side key), one-time download', async () => {
  await page.getByRole('button', { name: 'Issue certificate' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Server-side key (PKCS#12)').check();
  await d.getByLabel('Profile').selectOption('privatessl-p12-tls-server');
  await d.getByLabel('Subject DN').fill('CN=p12.e2e.example');
  await d.getByRole('button', { name: 'Add SAN' }).click();
  await d.getByLabel('SAN 1 value').fill('p12.e2e.example');
  await d.getByLabel('PKCS#12 password', { exact: true }).fill('p12 secret pass');
  await d.getByLabel('Confirm PKCS#12 password').fill('p12 secret pass');
  await d.getByRole('button', { name: 'Issue', exact: true }).click();
  await d.getByText('Download once.').waitFor();
  await shot(page, 'issue-p12');
  const f = await download(page, () => d.getByRole('button', { name: 'Download PKCS#12' }).click());
  expect(f.data.length > 500 && f.data[0] === 0x30, 'a DER PKCS#12');
  writeFileSync(join(SHOTS, 'issued.p12'), f.data);
  expect(await d.getByRole('button', { name: 'PKCS#12 downloaded' }).isDisabled(), 'only one download');
  await d.getByRole('button', { name: 'Close', exact: true }).click();
});

await step('issued certificates: search and filters', async () => {
  await page.getByRole('tab', { name: 'Issued Certificates' }).click();
  await page.getByRole('link', { name: /p12\.e2e\.example/ }).waitFor();
  await page.getByLabel('Search').fill('www.e2e');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.getByRole('link', { name: /p12\.e2e\.example/ }).waitFor({ state: 'detached' });
  await page.getByLabel('Expiry').selectOption('expired');
  await page.getByText('No certificates match.').waitFor();
  await page.getByLabel('Expiry').selectOption('');
  await page.getByRole('cell', { name: facts.serial }).waitFor();
  await shot(page, 'ca-certificates');
});

await step('revoke: status changes', async () => {
  await page.getByRole('row', { name: new RegExp(facts.serial) }).getByRole('link').click();
  await page.getByRole('heading', { name: 'Certificate', exact: true }).waitFor();
  expect((await page.getByTestId('cert-status').textContent()) === 'issued', 'issued before');
  await page.getByRole('button', { name: 'Suspend', exact: true }).click();
  await page.getByRole('button', { name: 'Confirm suspend' }).click();
  await page.getByRole('button', { name: 'Unsuspend', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Unsuspend', exact: true }).click();
  await page.getByRole('button', { name: 'Confirm unsuspend' }).click();
  await page.getByRole('button', { name: 'Suspend', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  await page.getByLabel('Reason').selectOption('keyCompromise');
  await page.getByRole('button', { name: 'Confirm revoke' }).click();
  await page.getByText('revoked', { exact: true }).first().waitFor();
  expect((await page.getByTestId('cert-status').textContent()) === 'revoked', 'revoked after');
  expect(!(await page.getByRole('button', { name: 'Revoke', exact: true }).count()), 'no revoke button any more');
  await shot(page, 'certificate');
});

await step('clone a profile with the raw JSON editor and with the form', async () => {
  await page.getByRole('link', { name: 'Certificate Profiles', exact: true }).click();
  await page.getByRole('button', { name: 'Clone privatessl-tls-server', exact: true }).click();
  const d = page.getByRole('dialog');
  await d.getByRole('tab', { name: 'Raw JSON' }).click();
  const raw = JSON.parse(await d.getByLabel('Profile JSON').inputValue());
  expect(raw.group === 'privatessl' && Array.isArray(raw.usages), 'the raw editor starts from the source profile');
  raw.id = 'e2e-tls-raw';
  raw.validity_period = 'P90D';
  raw.description = 'cloned by the e2e test';
  await d.getByLabel('Profile JSON').fill(JSON.stringify(raw, null, 2));
  await shot(page, 'profile-clone');
  await d.getByRole('button', { name: 'Create profile' }).click();
  await page.getByRole('heading', { name: 'Profile e2e-tls-raw' }).waitFor();
  await page.getByText('Custom profile').waitFor();
  await page.getByRole('definition').filter({ hasText: 'P90D' }).waitFor();
  await page.getByRole('button', { name: 'Clone', exact: true }).click();
  await d.getByLabel('New profile id').fill('e2e-tls-form');
  await d.getByLabel('Validity period').fill('P30D');
  await d.getByRole('button', { name: 'Create profile' }).click();
  await page.getByRole('heading', { name: 'Profile e2e-tls-form' }).waitFor();
  await page.getByRole('link', { name: '← All profiles' }).click();
  await page.getByRole('tab', { name: /Custom profiles \(2\)/ }).click();
  await page.getByRole('link', { name: 'e2e-tls-form' }).waitFor();
  await shot(page, 'profiles');
});

await step('ACME configuration and an EAB key (shown once)', async () => {
  await page.getByRole('link', { name: 'Enrollment Protocols' }).click();
  await page.getByRole('button', { name: 'Create configuration' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Protocol').selectOption('acme');
  await d.getByLabel('Identifier').fill('e2e-acme');
  await d.getByLabel('Description').fill('web servers');
  await d.getByLabel('Issuing CA').selectOption('e2e-issuing');
  await d.getByLabel('Certificate profile').selectOption('privatessl-tls-server');
  await d.getByRole('button', { name: 'Create', exact: true }).click();
  await page.getByRole('heading', { name: 'Configuration e2e-acme' }).waitFor();
  const dir = await page.getByTestId('value-directoryUrl').textContent();
  expect(/\/acme\/.+\/e2e-acme\/directory$/.test(dir), `a directory URL (${dir})`);
  await page.getByLabel('EAB key name').fill('frontends');
  await page.getByRole('button', { name: 'Create EAB key' }).click();
  await page.getByText('Shown once.').waitFor();
  const hmac = await page.getByTestId('value-HMAC key').textContent();
  expect(hmac.length >= 32, 'an HMAC key');
  await page.getByRole('cell', { name: 'frontends' }).waitFor();
  await shot(page, 'protocol-acme');
  await page.getByRole('button', { name: 'I have stored it' }).click();
  expect(!(await page.getByText(hmac).count()), 'the key is gone from the page');
  await page.getByRole('tab', { name: 'Events' }).click();
  await page.getByRole('tab', { name: 'End Entities' }).click();
  await page.getByText('No end entities have enrolled yet.').waitFor();
  await page.getByRole('link', { name: 'Enrollment Protocols' }).click();
  await page.getByRole('link', { name: 'e2e-acme' }).waitFor();
  await shot(page, 'protocols');
});

await step('EST, MDM (credential + Digital ID), SCEP and CMP configurations', async () => {
  const d = page.getByRole('dialog');
  const create = async (type, id, fill) => {
    await page.getByRole('link', { name: 'Enrollment Protocols' }).click();
    await page.getByRole('button', { name: 'Create configuration' }).click();
    await d.getByLabel('Protocol').selectOption(type);
    await d.getByLabel('Identifier').fill(id);
    await d.getByLabel('Issuing CA').selectOption('e2e-issuing');
    if (fill) await fill();
    await d.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('heading', { name: `Configuration ${id}` }).waitFor();
  };
  await create('est', 'e2e-est', () => d.getByLabel('Client authentication').selectOption('basic'));
  await page.getByTestId('value-estUrl').waitFor();
  await page.getByLabel('Credential name').fill('factory line 1');
  await page.getByLabel('User / reference (optional)').fill('line1');
  await page.getByRole('button', { name: 'Create credential' }).click();
  await page.getByText('Shown once.').waitFor();
  const secret = (await page.getByTestId('value-Secret').textContent()).trim();
  expect(secret.length >= 16, 'an EST password');
  await shot(page, 'protocol-est');
  if (cfg.serviceCa) {
    // a device enrols over EST (curl), then the Events and Issued Certificates tabs show it
    const estUrl = (await page.getByTestId('value-estUrl').textContent()).trim();
    const body = join(SHOTS, 'est.b64');
    writeFileSync(body, cfg.csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''));
    const out = execFileSync('curl', ['-sS', '--fail', '--noproxy', '*', '--cacert', cfg.serviceCa, '-u', `line1:${secret}`,
      '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${body}`, `${estUrl}/simpleenroll`]).toString();
    expect(out.length > 100, 'EST issued a certificate');
    await page.getByRole('tab', { name: 'Events' }).click();
    await page.getByRole('cell', { name: 'done' }).first().waitFor();
    await shot(page, 'protocol-events');
    await page.getByRole('tab', { name: 'Issued Certificates' }).click();
    await page.getByRole('link', { name: /www\.e2e\.example/ }).waitFor();
  }
  await create('mdmws', 'e2e-mdm');
  await page.getByTestId('value-mdmWebServiceUrl').waitFor();
  await page.getByLabel('Credential name').fill('Jamf Pro');
  await page.getByLabel('User / reference (optional)').fill('jamfpro');
  await page.getByRole('button', { name: 'Create credential' }).click();
  await page.getByText('Shown once.').waitFor();
  await page.getByRole('tab', { name: 'Digital IDs' }).click();
  await page.getByLabel('Digital ID name').fill('device');
  await page.getByLabel('RDN format').fill('CN=<igusername>,OU=<devicetype>');
  await page.getByLabel('Parent DN (optional)').fill('O=Example,C=US');
  await page.getByRole('button', { name: 'Add Digital ID' }).click();
  await page.getByText('CN=<igusername>,OU=<devicetype>').waitFor();
  await shot(page, 'protocol-mdm');
  await create('scep', 'e2e-scep');
  await page.getByTestId('value-scepUrl').waitFor();
  await create('cmp', 'e2e-cmp');
  await page.getByTestId('value-cmpUrl').waitFor();
  // (no Intune configuration here: the daemon would start syncing revocations with Azure AD)
});

if (cfg.scepclient)
  await step('SCEP device (scepclient) on an RSA CA: end entity deactivate, activate, decommission', async () => {
    const d = page.getByRole('dialog');
    await page.getByRole('link', { name: 'Certificate Authorities', exact: true }).click();
    // scepclient encrypts to every certificate of the chain: RSA all the way up
    await page.getByRole('button', { name: 'Create root CA' }).click();
    await d.getByLabel('Identifier').fill('e2e-rsa-root');
    await d.getByLabel('Signing key').selectOption('RSA-2048+PKCS15-SHA256');
    await d.getByRole('button', { name: 'Create' }).click();
    await page.locator('[data-ca="e2e-rsa-root"]').waitFor();
    await page.getByRole('button', { name: 'Create issuing CA' }).click();
    await d.getByLabel('Identifier').fill('e2e-rsa');
    await d.getByLabel('Signing key').selectOption('RSA-2048+PKCS15-SHA256');
    await d.getByLabel('Parent CA').selectOption('e2e-rsa-root');
    await d.getByRole('button', { name: 'Create' }).click();
    await page.locator('[data-ca="e2e-rsa"]').waitFor();
    await page.goto(`${URL0}/portal/cas/e2e-rsa`);
    await page.getByRole('tab', { name: 'Certificate Profiles' }).click();
    await page.getByLabel('Add profile').selectOption('scep-tls-client');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('link', { name: 'scep-tls-client', exact: true }).waitFor();
    await page.getByRole('link', { name: 'Enrollment Protocols' }).click();
    await page.getByRole('button', { name: 'Create configuration' }).click();
    await d.getByLabel('Protocol').selectOption('scep');
    await d.getByLabel('Identifier').fill('e2e-scep-rsa');
    await d.getByLabel('Issuing CA').selectOption('e2e-rsa');
    await d.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('heading', { name: 'Configuration e2e-scep-rsa' }).waitFor();
    await page.getByLabel('Credential name').fill('static challenge');
    await page.getByRole('button', { name: 'Create credential' }).click();
    const challenge = (await page.getByTestId('value-Secret').textContent()).trim();
    const dir = join(SHOTS, 'scep');
    rmSync(dir, { recursive: true, force: true }); // scepclient reuses the key and CSR it finds
    mkdirSync(dir, { recursive: true });
    run(cfg.scepclient, ['-server-url', `${URL0}/scep/${cfg.partition}/e2e-scep-rsa/pkiclient.exe`,
      '-private-key', join(dir, 'client.key'), '-certificate', join(dir, 'client.pem'), '-cn', 'device-e2e',
      '-organization', 'Devices', '-country', 'US', '-challenge', challenge], dir);
    await page.getByRole('tab', { name: 'End Entities' }).click();
    const row = page.getByRole('row', { name: /device-e2e/ });
    await row.getByText('active', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Deactivate' }).click();
    await row.getByText('inactive', { exact: true }).waitFor();
    await row.getByRole('button', { name: 'Activate', exact: true }).click();
    await row.getByText('active', { exact: true }).waitFor();
    await shot(page, 'protocol-end-entities');
    page.once('dialog', (dlg) => dlg.accept());
    await row.getByRole('button', { name: 'Decommission' }).click();
    await row.getByText('decommissioned', { exact: true }).waitFor();
    await page.getByRole('tab', { name: 'Events' }).click();
    await page.getByRole('cell', { name: 'issue', exact: true }).first().waitFor();
    await shot(page, 'protocol-events');
    await page.getByRole('tab', { name: 'Issued Certificates' }).click();
    await page.getByRole('link', { name: /device-e2e/ }).waitFor();
  });

await step('invite a user and add them to a role', async () => {
  await page.getByRole('link', { name: 'User Management' }).click();
  await page.getByRole('button', { name: 'Invite user' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Email').fill(cfg.auditorEmail);
  await d.getByLabel('First name').fill('Audrey');
  await d.getByLabel('Last name').fill('Auditor');
  await d.getByLabel('Protocol Auditors').check();
  await d.getByRole('button', { name: 'Send invitation' }).click();
  facts.invite = (await d.getByTestId('value-Invitation link').textContent()).trim();
  expect(/\/invite\/[^/]+$/.test(facts.invite), `an invitation link (${facts.invite})`);
  await d.getByRole('button', { name: 'Close', exact: true }).click();
  await page.getByRole('tab', { name: 'Roles' }).click();
  await page.getByLabel('Add a member to CA Auditors').selectOption(cfg.auditorEmail);
  await page.getByRole('region', { name: 'Role CA Auditors' }).getByRole('button', { name: 'Add member' }).click();
  await page.getByRole('region', { name: 'Role CA Auditors' }).getByText(cfg.auditorEmail).waitFor();
  await shot(page, 'users-roles');
  await page.getByRole('tab', { name: 'Users' }).click();
  await page.getByRole('cell', { name: 'Protocol Auditors, CA Auditors' }).waitFor();
  await shot(page, 'users');
});

await step('the invitee enrols through the link and signs in', async () => {
  const p2 = await newPage();
  const path = new URL(facts.invite).pathname;
  await p2.goto(`${URL0}${path}`);
  await p2.getByLabel('Password', { exact: true }).fill('auditor portal password');
  await p2.getByLabel('Repeat password').fill('auditor portal password');
  await p2.getByRole('button', { name: 'Continue' }).click();
  const secret = (await p2.getByTestId('value-TOTP secret').textContent()).trim();
  facts.auditor = { email: cfg.auditorEmail, password: 'auditor portal password', secret, page: p2 };
  await p2.getByLabel('Authenticator code').fill(await nextCode(facts.auditor));
  await p2.getByRole('button', { name: 'Activate account' }).click();
  await p2.getByText('is active').waitFor();
  await login(p2, facts.auditor);
});

await step('a CA Auditor sees no issue, revoke or admin actions; a 403 reads clearly', async () => {
  const p2 = facts.auditor.page;
  expect(!(await p2.getByRole('link', { name: 'User Management', exact: true }).count()), 'no User Management link');
  expect(await p2.getByRole('link', { name: 'Audit Reports', exact: true }).count() === 1, 'audit reports for auditors');
  await p2.goto(`${URL0}/portal/cas`);
  await p2.locator('[data-ca="e2e-issuing"]').click();
  await p2.getByRole('region', { name: 'CA details' }).getByText('subjectKeyIdentifier').waitFor();
  for (const b of ['Create root CA', 'Create issuing CA', 'Delete CA', 'Download certificate'])
    expect(!(await p2.getByRole('button', { name: b }).count()), `no "${b}" button`);
  await p2.goto(`${URL0}/portal/cas/e2e-issuing`);
  await p2.getByRole('link', { name: /p12\.e2e\.example/ }).waitFor();
  expect(!(await p2.getByRole('button', { name: 'Issue certificate' }).count()), 'no Issue button');
  await p2.getByRole('link', { name: /p12\.e2e\.example/ }).click();
  await p2.getByTestId('cert-status').waitFor();
  for (const b of ['Revoke', 'Suspend', 'Unsuspend'])
    expect(!(await p2.getByRole('button', { name: b, exact: true }).count()), `no "${b}" button`);
  await p2.getByRole('button', { name: 'Download PEM', exact: true }).waitFor();
  await shot(p2, 'auditor-certificate');
  await p2.goto(`${URL0}/portal/users`);
  await p2.getByRole('alert').filter({ hasText: 'Not allowed' }).waitFor();
  await shot(p2, 'auditor-403');
  await p2.context().close();
});

await step('CAGW credential: add a CA with roles, one-time PKCS#12 and password', async () => {
  await page.getByRole('link', { name: 'CAGW Credentials' }).click();
  await page.getByRole('button', { name: 'Create credential' }).click();
  const d = page.getByRole('dialog');
  await d.getByLabel('Identifier').fill('e2e-tool');
  await d.getByLabel('Name', { exact: true }).fill('E2E tool');
  await d.getByLabel('Add CA').selectOption('e2e-issuing');
  await d.getByRole('button', { name: 'Add CA', exact: true }).click();
  await d.getByRole('group', { name: 'Roles on e2e-issuing' }).getByLabel('CA Auditors').check();
  await d.getByRole('button', { name: 'Create credential' }).click();
  await page.getByText('Shown once.').waitFor();
  const pw = (await page.getByTestId('value-PKCS#12 password').textContent()).trim();
  expect(pw.length >= 12, 'a PKCS#12 password');
  await shot(page, 'cagw');
  const f = await download(page, () => page.getByRole('button', { name: 'Download PKCS#12' }).click());
  expect(f.data[0] === 0x30 && f.name.endsWith('.p12'), 'a PKCS#12 file');
  writeFileSync(join(SHOTS, 'cagw.p12'), f.data);
  writeFileSync(join(SHOTS, 'cagw.p12.password'), pw);
  expect(await page.getByRole('button', { name: 'PKCS#12 downloaded' }).isDisabled(), 'one download');
  await page.getByRole('button', { name: 'I have stored both' }).click();
  await page.getByRole('cell', { name: /e2e-issuing: Certificate Administrators, CA Auditors/ }).waitFor();
});

await step('audit reports: filter and export CSV', async () => {
  await page.getByRole('link', { name: 'Audit Reports', exact: true }).click();
  await page.getByRole('cell', { name: 'auth.login' }).first().waitFor();
  await page.getByLabel('Action').fill('cert.revoke');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await page.getByRole('cell', { name: 'auth.login' }).first().waitFor({ state: 'detached' });
  const n = await page.locator('tbody tr').count();
  expect(n >= 1, `revocation records (${n})`);
  await shot(page, 'audit');
  const f = await download(page, () => page.getByRole('button', { name: 'Export CSV' }).click());
  const csv = f.data.toString();
  expect(f.name === 'audit.csv' && csv.includes('cert.revoke') && !csv.includes('auth.login'), 'a filtered CSV');
  await page.getByRole('button', { name: 'Verify hash chain' }).click();
  await page.getByText('Hash chain intact').waitFor();
});

if (cfg.supervisorToken)
  await step('supervisor: subscriptions, assign with terms, partitions', async () => {
    const p3 = await newPage();
    await p3.goto(`${URL0}/portal/supervisor`);
    await p3.getByLabel('Supervisor token').fill(cfg.supervisorToken);
    await p3.getByRole('button', { name: 'Sign in' }).click();
    await p3.getByRole('heading', { name: 'Supervisor', exact: true }).waitFor();
    await p3.getByRole('button', { name: 'New subscription' }).click();
    const d = p3.getByRole('dialog');
    await d.getByLabel('Certificates purchased').fill('5000');
    await d.getByRole('button', { name: 'Create', exact: true }).click();
    const id = (await d.getByText(/Subscription .* created/).textContent()).split(' ')[1];
    await d.getByRole('button', { name: 'Close', exact: true }).click();
    await p3.getByRole('row', { name: new RegExp(id) }).getByRole('button', { name: 'Assign' }).click();
    await d.getByLabel('Region').fill('eu');
    await d.getByLabel('Label', { exact: true }).fill('E2E customer');
    await d.getByLabel('Owner email').fill('boss@customer.example');
    expect(await d.getByRole('button', { name: 'Assign' }).isDisabled(), 'terms must be accepted first');
    await d.getByLabel('I accept the terms of service for this subscription').check();
    await d.getByRole('button', { name: 'Assign' }).click();
    await d.getByTestId('value-Owner invitation link').waitFor();
    await shot(p3, 'supervisor-assign');
    await d.getByRole('button', { name: 'Close', exact: true }).click();
    await p3.getByLabel('Search').fill('E2E customer');
    await p3.getByRole('button', { name: 'Search', exact: true }).click();
    await p3.getByRole('row', { name: new RegExp(id) }).getByText('Assigned').waitFor();
    await p3.getByRole('tab', { name: 'Partitions' }).click();
    await p3.getByRole('cell', { name: 'E2E customer' }).waitFor();
    await shot(p3, 'supervisor');
    await p3.setViewportSize({ width: 390, height: 844 });
    await noOverflow(p3, '/supervisor');
    await p3.context().close();
  });

// Each main page: renders at 390 px without horizontal overflow.
await step('390 px: main pages without horizontal overflow', async () => {
  const ctx = page.context();
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [path, name] of cfg.mobilePages || [['/', 'home'], ['/cas', 'cas'], ['/cas/e2e-issuing', 'ca'],
    [`/cas/e2e-issuing/certificates/${facts.serial}`, 'certificate'], ['/profiles', 'profiles'], ['/protocols', 'protocols'],
    ['/protocols/e2e-acme', 'protocol'], ['/users', 'users'], ['/cagw', 'cagw'], ['/audit', 'audit']]) {
    await page.goto(`${URL0}/portal${path}`);
    await page.getByTestId('partition').waitFor();
    await page.locator('main h1').waitFor();
    await page.waitForTimeout(300);
    await noOverflow(page, path);
    await shot(page, `mobile-${name}`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  void ctx;
});

await step('sign out', async () => {
  await page.goto(`${URL0}/portal/`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
});

await browser.close();
if (pageErrors.length) {
  failed = true;
  console.log(`FAIL page errors: ${pageErrors.join(' | ')}`);
}
console.log(failed ? 'E2E FAILED' : 'E2E PASSED');
process.exit(failed ? 1 : 0);
