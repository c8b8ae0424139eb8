// The demo page (www/) in headless Chromium: load a model by URL with progress, chat with a
// streamed reply and tokens/s, stop mid-reply, the cache manager, offline reload from the
// service worker and the cache, output rendered as text, the no-WebGPU message.
// Screenshots land in tests/artifacts/ (git-ignored).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startServer, ROOT } from './server.mjs';
import { openDemo as open, loadByUrl, sendAndWait } from './demo-page.mjs';
import { launch, ARTIFACTS } from './browser.mjs';

const openDemo = (context, viewport) => open(server, context, viewport);
const MODEL = '/fixtures/tiny-q8_0.gguf';
let server;
let browser;

before(async () => {
  server = await startServer({ root: path.join(ROOT, 'www'), mounts: { '/fixtures/': path.join(ROOT, 'tests/fixtures'), '/models/': path.join(ROOT, 'models'), '/bench-schema/': path.join(ROOT, 'scripts/bench') } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});


const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, name), fullPage: false });



test('pick a model by URL, watch it download, chat, stop, manage the cache, reload offline', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  await shot(page, 'demo-empty.png');
  assert.match(await page.textContent('#presets'), /Phi-4-mini-instruct.*2\.5 GB download/s);

  // Slow the download's first response so the progress bar can be seen (and photographed).
  server.faults.set(MODEL, { delayMs: 1500, times: 1 });
  await page.fill('#max-tokens', '12');
  await page.dispatchEvent('#max-tokens', 'change');
  await page.fill('#custom-url', `${server.url}${MODEL}`);
  await page.click('#load-button');
  await page.waitForSelector('#progress:not([hidden])');
  assert.match(await page.textContent('#progress-phase'), /Downloading/);
  await shot(page, 'demo-downloading.png');
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.equal(await page.isHidden('#progress'), true, 'the progress bar goes away when done');
  assert.match(await page.textContent('#model-status'), /ready \(after downloading 1\.4 MB\)/);

  // A streamed reply with its figures.
  const reply = await sendAndWait(page, 'Hello there');
  assert.match(await reply.locator('.stats').textContent(), /\d+ tokens · [\d.]+ tokens\/s · first token after [\d.]+ s/);
  assert.equal(await page.locator('.message.user').first().textContent(), 'Hello there');
  await shot(page, 'demo-chat.png');

  // Stop mid-reply: a reply allowed 400 tokens, stopped early.
  await page.fill('#max-tokens', '400');
  await page.dispatchEvent('#max-tokens', 'change');
  await page.fill('#prompt', 'Tell me a long story');
  await page.keyboard.press('Enter');
  // Stop as soon as the button appears: the reply is at most a few tokens in by then.
  await page.click('#stop', { timeout: 10_000 });
  const stopped = page.locator('.message.assistant').last();
  await stopped.locator('.footer').waitFor({ timeout: 60_000 });
  assert.match(await stopped.locator('.stats').textContent(), /stopped/);
  const stoppedTokens = Number((await stopped.locator('.stats').textContent()).match(/(\d+) tokens/)[1]);
  assert.ok(stoppedTokens < 400, `stopped early (${stoppedTokens} tokens)`);
  assert.equal(await page.isVisible('#send'), true);

  // The cache manager lists the model with its size.
  assert.match(await page.textContent('#cache-list'), /tiny-q8_0\.gguf\s*1\.4 MB/);
  await page.locator('#cache-heading').scrollIntoViewIfNeeded();
  await shot(page, 'demo-cache.png');

  // Privacy: once cached, opening the page, loading the model and chatting send nothing to
  // any server (the browser's own check for a new service worker aside).
  await page.evaluate(() => navigator.serviceWorker.ready);
  server.clearLog();
  const requests = [];
  context.on('request', (r) => requests.push(r));
  await page.reload();
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.match(await page.textContent('#model-status'), /from this browser's cache/);
  await page.fill('#max-tokens', '6');
  await page.dispatchEvent('#max-tokens', 'change');
  await sendAndWait(page, 'Is anyone listening?');
  const updateCheck = (p) => p === '/sw.js' || p === '/version.js';
  assert.deepEqual(server.log.filter((e) => !updateCheck(e.path)), [], 'online, cached: nothing reached the server');
  // Playwright sees the shared engine worker's script requested but never reports its
  // response; the server log above shows it did not reach the network either.
  const sharedWorkerScript = (r) => new URL(r.url()).pathname === '/pkg/worker.js';
  const fromNetwork = await Promise.all(requests.filter((r) => !sharedWorkerScript(r)).map(async (r) => ({ url: r.url(), sw: (await r.response())?.fromServiceWorker() ?? false })));
  assert.deepEqual(fromNetwork.filter((r) => !r.sw && !/^(data|blob):/.test(r.url) && !updateCheck(new URL(r.url).pathname)), [], 'every request the page made was answered by the service worker');

  // Offline: the service worker serves the page, the model comes from IndexedDB.
  server.clearLog();
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.match(await page.textContent('#model-status'), /from this browser's cache/);
  await page.fill('#max-tokens', '8');
  await page.dispatchEvent('#max-tokens', 'change');
  const offlineReply = await sendAndWait(page, 'Still there?');
  assert.match(await offlineReply.locator('.stats').textContent(), /tokens\/s/);
  // The browser's own service-worker update check ignores the emulated offline state.
  assert.deepEqual(server.log.filter((e) => !updateCheck(e.path)), [], 'offline: no request from the page reached the server');
  await context.setOffline(false);

  // Delete from the cache manager.
  await page.click('#cache-list button:has-text("Delete")');
  await page.waitForFunction(() => document.querySelector('#cache-list').textContent.includes('None yet'));
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the page\'s Content-Security-Policy lets the page and its worker reach only the chosen model host', async () => {
  // Two other origins serving models, as a CDN would (CORS, Range, ETag).
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, Last-Modified, Accept-Ranges' };
  const hostA = await startServer({ root: path.join(ROOT, 'tests/fixtures'), headers: cors });
  const hostB = await startServer({ root: path.join(ROOT, 'tests/fixtures'), headers: cors });
  const context = await browser.newContext();
  try {
    const page = await openDemo(context);
    const tryFetch = (url) => page.evaluate((u) => fetch(u).then(() => 'fetched', () => 'refused'), url);
    const workerLoad = (url) => page.evaluate(async (u) => {
      const { Engine } = await import('/pkg/hearth.js');
      return Engine.load(u, { inheritCsp: true }).then(async (e) => { await e.unload(); return 'loaded'; }, (e) => e.code);
    }, url);
    // Before any model is chosen: this origin only.
    assert.equal(await tryFetch(`${hostA.url}/tiny-q8_0.gguf`), 'refused');
    assert.equal(await workerLoad(`${hostA.url}/tiny-q8_0.gguf`), 'blocked-by-policy');
    assert.equal(hostA.log.length, 0, 'no request left the browser');

    // Choosing a model on host A brings the page back under a policy for A, and it loads.
    await page.fill('#max-tokens', '4');
    await page.dispatchEvent('#max-tokens', 'change');
    await loadByUrl(page, `${hostA.url}/tiny-q8_0.gguf`);
    assert.ok(hostA.requests('/tiny-q8_0.gguf').length > 0);
    assert.equal(new URL(page.url()).search, '', 'the address is clean again once the model is in');
    await sendAndWait(page, 'Hi');
    // Host B is still out of reach, for the page and for the engine's worker.
    assert.equal(await tryFetch(`${hostB.url}/tiny-q4_0.gguf`), 'refused');
    assert.equal(await workerLoad(`${hostB.url}/tiny-q4_0.gguf`), 'blocked-by-policy');
    assert.equal(hostB.log.length, 0, 'nothing reached host B');

    // Switching to a model on host B: now B is reachable and A is not.
    await loadByUrl(page, `${hostB.url}/tiny-q4_0.gguf`);
    assert.match(await page.textContent('#model-status'), /tiny-q4_0\.gguf is ready/);
    hostA.clearLog();
    assert.equal(await tryFetch(`${hostA.url}/tiny-q8_0.gguf`), 'refused');
    assert.equal(hostA.log.length, 0);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    await hostA.close();
    await hostB.close();
  }
});

test('bench.html reports what `hearth bench --json` reports, in the same shape', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // With a JSON schema: decoding under it is reported beside decoding without it.
  await page.goto(`${server.url}/bench.html?model=${MODEL}&chunk-size=262144&prompt-lens=16,32&ctx-lens=16&decode-tokens=4&json-schema=/bench-schema/records.schema.json&run=1`);
  await page.waitForSelector('body[data-state="done"], body[data-state="failed"]', { timeout: 180_000 });
  const web = JSON.parse(await page.textContent('#result'));
  assert.equal(web.error, undefined, web.error);
  const bin = ['target/debug/hearth', 'target/release/hearth'].map((p) => path.join(ROOT, p)).find((p) => fs.existsSync(p));
  const native = JSON.parse(execFileSync(bin, ['bench', '--model', path.join(ROOT, 'tests/fixtures/tiny-q8_0.gguf'), '--prompt-lens', '16,32', '--ctx-lens', '16', '--decode-tokens', '4', '--json-schema', path.join(ROOT, 'scripts/bench/records.schema.json'), '--json'], { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } }).toString().trim().split('\n').at(-1));
  const shape = (v) => (Array.isArray(v) ? [shape(v[0])] : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])])) : typeof v);
  // The browser's cache has no native counterpart: the first visit's download and the stored
  // chunks read back are the page's alone.
  const { first_load: firstLoad, ...webShared } = web;
  const { stored_chunks: storedChunks, stored_chunk_reads: storedChunkReads, ...webProfile } = web.load_profile;
  assert.deepEqual(shape({ ...webShared, load_profile: webProfile }), shape(native), 'the same JSON shape as the CLI');
  assert.equal(web.weight_bytes_per_token, native.weight_bytes_per_token, 'the same weight bytes per token');
  assert.deepEqual(web.prefill.map((p) => p.prompt_len), [16, 32]);
  for (const row of [...web.prefill, ...web.decode]) assert.ok(row.tokens_per_s > 0, JSON.stringify(row));
  assert.ok(Math.abs(web.decode[0].effective_gb_per_s - (web.decode[0].tokens_per_s * web.weight_bytes_per_token) / 1e9) < 1e-9);
  for (const row of [...web.constrained, ...native.constrained]) {
    assert.ok(row.tokens_per_s > 0 && Math.abs(row.ratio - row.tokens_per_s / row.free_tokens_per_s) < 1e-9, JSON.stringify(row));
  }
  assert.equal(web.constrained[0].free_tokens_per_s, web.decode[0].tokens_per_s);
  // The load, from the cache, beside the same bytes merely read and uploaded.
  for (const report of [web, native]) {
    assert.ok(report.load_s > 0 && report.raw_load_s > 0, JSON.stringify(report));
    const { read_s, other_s } = report.load_profile;
    assert.ok(read_s > 0 && other_s > 0 && Math.abs(read_s + other_s - report.load_s) < 1e-6, JSON.stringify(report));
  }
  for (const report of [web, native]) {
    const { compile_wait_s: compileWait, gpu_wait_s: gpuWait, other_s: other } = report.load_profile;
    assert.ok(compileWait >= 0 && gpuWait >= 0 && compileWait + gpuWait <= other, JSON.stringify(report.load_profile));
  }
  // A load from the cache reads every stored chunk back once, no more.
  assert.ok(storedChunks >= 1);
  assert.equal(storedChunkReads, storedChunks, JSON.stringify(web.load_profile));
  // The page's first visit downloaded the model and loaded it as it arrived.
  assert.ok(firstLoad.network_bytes > 0 && firstLoad.download_s > 0 && firstLoad.load_s >= firstLoad.download_s, JSON.stringify(firstLoad));
  assert.equal(await page.locator('#table tbody tr').count(), 4);
  // The GPU memory the engine held at most, within 5% of what its plan said it would.
  for (const report of [web, native]) {
    assert.ok(Math.abs(report.peak_gpu_bytes - report.planned_gpu_bytes) <= 0.05 * report.planned_gpu_bytes, JSON.stringify(report));
  }
  await context.close();
});

test('model output and user text render as text, never as HTML', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  const result = await page.evaluate(async () => {
    const { renderMarkdown } = await import('/markdown.js');
    const target = document.createElement('div');
    document.body.append(target);
    const evil = 'Here: <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script>\n\n```html\n<img src=y onerror="window.pwned=3">\n```\n[click](javascript:window.pwned=4) **bold** `<b>code</b>`';
    renderMarkdown(evil, target);
    await new Promise((r) => setTimeout(r, 300));
    return { imgs: target.querySelectorAll('img, script').length, links: [...target.querySelectorAll('a')].map((a) => a.href), text: target.textContent, pwned: window.pwned ?? null, bold: target.querySelector('strong')?.textContent };
  });
  assert.equal(result.imgs, 0);
  assert.equal(result.pwned, null);
  assert.deepEqual(result.links, [], 'javascript: links are not links');
  assert.match(result.text, /<img src=x onerror="window.pwned=1">/);
  assert.equal(result.bold, 'bold');
  await context.close();
});

test('a GGUF opened from disk loads and chats (dark theme, narrow screen)', async () => {
  const context = await browser.newContext({ colorScheme: 'dark' });
  const page = await openDemo(context, { width: 420, height: 860 });
  await page.fill('#max-tokens', '6');
  await page.dispatchEvent('#max-tokens', 'change');
  // A broken file first: the page says what is wrong and stays usable.
  const good = fs.readFileSync(path.join(ROOT, 'tests/fixtures/tiny-q4_k_m.gguf'));
  await page.setInputFiles('#file-input', { name: 'half.gguf', mimeType: 'application/octet-stream', buffer: good.subarray(0, good.length >> 1) });
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /the file is truncated: .* needs bytes up to offset \d+, but the file has \d+/);
  assert.equal(await page.isEnabled('#load-button'), true);
  await page.setInputFiles('#file-input', path.join(ROOT, 'tests/fixtures/tiny-q4_k_m.gguf'));
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.match(await page.textContent('#model-status'), /tiny-q4_k_m\.gguf is ready \(from your disk\)/);
  const reply = await sendAndWait(page, 'From a file');
  assert.match(await reply.locator('.stats').textContent(), /tokens\/s/);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(23, 18, 15)', 'the dark palette applies');
  assert.equal(await page.isHidden('#panel'), true, 'the panel folds away on a narrow screen');
  await shot(page, 'demo-dark-narrow.png');
  await context.close();
});

test('without WebGPU the page says so plainly', async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => { delete Object.getPrototypeOf(navigator).gpu; });
  const page = await openDemo(context, { width: 390, height: 800 });
  assert.match(await page.textContent('#webgpu-status'), /no WebGPU, which Hearth needs\. Use a recent Chrome/);
  assert.equal(await page.isDisabled('#load-button'), true);
  await shot(page, 'demo-no-webgpu-narrow.png');
  await context.close();
});
