// Headless Chromium (Debian's /usr/bin/chromium) with WebGPU on its software adapter,
// driven by playwright-core. Shared by the browser tests.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './server.mjs';

export const ARTIFACTS = path.join(ROOT, 'tests/artifacts');

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/** A page of the test harness (window.hearth = the package), its console echoed on failure. */
export async function harness(context, server) {
  const page = await context.newPage();
  const lines = [];
  page.on('console', (m) => lines.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`[pageerror] ${e.message}`));
  page.consoleLines = lines;
  await page.goto(`${server.url}/tests/browser/harness.html`);
  await page.waitForFunction(() => document.title === 'ready' || document.title === 'failed', null, { timeout: 30000 });
  return page;
}

export function fixture(name) {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/fixtures', name), 'utf8'));
}

export function saveArtifact(name, data) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, name), data);
}
