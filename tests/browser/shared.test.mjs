// One engine for every page of an origin (`Engine.load(src, { shared: true })`, a
// SharedWorker), in headless Chromium: the second page gets the model without uploading it
// again, both pages chat (at the same time, too: queued), closing the page that loaded the
// model leaves the other working, and a different model replaces it for every page with a
// typed error for the others. Where there is no SharedWorker, a Web Lock keeps one engine per
// browser: a second page waits for it or takes it over.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launch, harness, fixture } from './browser.mjs';

const Q8 = '/tests/fixtures/tiny-q8_0.gguf';
const Q4 = '/tests/fixtures/tiny-q4_0.gguf';
const CHUNK = 256 * 1024;
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Loads `url` into the page's shared engine (window.engine). */
function loadShared(page, url) {
  return page.evaluate(async (url) => {
    try {
      window.engine = await window.hearth.Engine.load(url, { shared: true, chunkSize: 256 * 1024 });
      const e = window.engine;
      return { shared: e.shared, reused: e.reused, networkBytes: e.networkBytes, profile: e.loadProfile, stats: await e.stats() };
    } catch (e) {
      return { error: e.message, code: e.code };
    }
  }, url);
}

function greedy(page, prompt, n) {
  return page.evaluate(async ({ prompt, n }) => {
    try {
      return (await window.engine.generate({ tokens: prompt, maxTokens: n, temperature: 0, ignoreEos: true })).tokens;
    } catch (e) {
      return { error: e.message, code: e.code };
    }
  }, { prompt, n });
}

test('pages of one origin share one engine: one upload, both chat, the first may close', async () => {
  const context = await browser.newContext();
  const first = await harness(context, server);
  const second = await harness(context, server);
  const ref = fixture('tiny-q8_0.json').greedy;

  const a = await loadShared(first, server.url + Q8);
  assert.equal(a.error, undefined, a.error);
  assert.deepEqual([a.shared, a.reused], [true, false]);
  assert.ok(a.profile.storedChunkReads > 0 && a.stats.modelBytesOnGpu > 0);

  server.clearLog();
  const b = await loadShared(second, server.url + Q8);
  assert.equal(b.error, undefined, b.error);
  assert.deepEqual([b.shared, b.reused, b.networkBytes, b.profile.storedChunkReads], [true, true, 0, 0], 'nothing read or uploaded again');
  assert.deepEqual(server.requests(Q8), [], 'nothing fetched');
  assert.equal(b.stats.gpuBytes, a.stats.gpuBytes, 'the GPU holds the model once');
  assert.equal(b.stats.peakGpuBytes, a.stats.peakGpuBytes);

  // Both chat, at the same time too: one queue answers them in turn.
  const [x, y] = await Promise.all([greedy(first, ref.prompt, ref.tokens.length), greedy(second, ref.prompt, ref.tokens.length)]);
  assert.deepEqual(x, ref.tokens);
  assert.deepEqual(y, ref.tokens);

  // The page that loaded the model goes; the other goes on.
  await first.close();
  assert.deepEqual(await greedy(second, ref.prompt, ref.tokens.length), ref.tokens);
  await context.close();
});

test('a different model replaces the shared one for every page, with a typed error for the others', async () => {
  const context = await browser.newContext();
  const first = await harness(context, server);
  const second = await harness(context, server);
  assert.equal((await loadShared(first, server.url + Q8)).error, undefined);
  assert.equal((await loadShared(second, server.url + Q8)).reused, true);
  const other = await loadShared(second, server.url + Q4);
  assert.equal(other.error, undefined, other.error);
  assert.equal(other.reused, false);
  const ref = fixture('tiny-q4_0.json').greedy;
  assert.deepEqual(await greedy(second, ref.prompt, ref.tokens.length), ref.tokens);
  const stale = await greedy(first, ref.prompt, 2);
  assert.equal(stale.code, 'model-replaced', JSON.stringify(stale));
  // Loading again puts the first page back in (sharing the model now loaded).
  assert.equal((await loadShared(first, server.url + Q4)).reused, true);
  assert.deepEqual(await greedy(first, ref.prompt, ref.tokens.length), ref.tokens);

  // Unloading frees the model only when no page uses it.
  await first.evaluate(() => window.engine.unload());
  assert.deepEqual(await greedy(second, ref.prompt, ref.tokens.length), ref.tokens);
  await context.close();
});

test('shared and inheritCsp together are refused as a bad request', async () => {
  const context = await browser.newContext();
  const page = await harness(context, server);
  const got = await page.evaluate(async (url) => {
    try { await window.hearth.Engine.load(url, { shared: true, inheritCsp: true }); return {}; } catch (e) { return { code: e.code, message: e.message }; }
  }, server.url + Q8);
  assert.equal(got.code, 'bad-request', JSON.stringify(got));
  assert.match(got.message, /shared and inheritCsp/);
  await context.close();
});

test('a shared engine downloads only from the origins it is given', async () => {
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, Last-Modified, Accept-Ranges' };
  const elsewhere = await startServer({ headers: cors });
  const context = await browser.newContext();
  try {
    const page = await harness(context, server);
    const load = (url, connectSrc) => page.evaluate(async ({ url, connectSrc }) => {
      try { const e = await window.hearth.Engine.load(url, { shared: true, connectSrc }); await e.unload(); return 'loaded'; } catch (e) { return e.code; }
    }, { url, connectSrc });
    assert.equal(await load(elsewhere.url + Q8, ["'self'"]), 'blocked-by-policy');
    assert.equal(elsewhere.log.length, 0, 'no request left for the other origin');
    assert.equal(await load(elsewhere.url + Q8, ["'self'", elsewhere.url]), 'loaded');
    assert.ok(elsewhere.requests(Q8).length > 0);
  } finally {
    await context.close();
    await elsewhere.close();
  }
});

/** Starts loading `url` into a shared engine (window.engine once loaded; window.loading
 *  resolves to 'loaded' or the error's code; window.waited and window.takenOver are set by the
 *  callbacks). */
function startLocked(page, url, extra = {}) {
  return page.evaluate(({ url, extra }) => {
    window.waited = false;
    window.takenOver = false;
    window.loading = window.hearth.Engine.load(url, {
      shared: true,
      chunkSize: 256 * 1024,
      ...extra,
      onWaiting: () => { window.waited = true; },
      onTakenOver: () => { window.takenOver = true; },
    }).then((e) => { window.engine = e; return 'loaded'; }, (e) => e.code ?? e.name);
  }, { url, extra });
}

const settled = (page) => page.evaluate(() => Promise.race([window.loading, new Promise((r) => setTimeout(() => r('pending'), 500))]));

test('without SharedWorker, a Web Lock keeps one engine per browser: a second page waits, takes over, or gets it when the first closes', async () => {
  const context = await browser.newContext();
  // Chrome on Android has no SharedWorker.
  await context.addInitScript(() => Object.defineProperty(window, 'SharedWorker', { value: undefined, configurable: true }));
  const first = await harness(context, server);
  const second = await harness(context, server);
  const ref = fixture('tiny-q8_0.json').greedy;
  const url = server.url + Q8;

  await startLocked(first, url);
  assert.equal(await first.evaluate(() => window.loading), 'loaded');
  assert.deepEqual(await first.evaluate(() => [window.waited, window.engine.sharing, window.engine.shared]), [false, 'lock', false]);

  // A second page waits for the engine, loading nothing, until the first unloads it.
  await startLocked(second, url);
  await second.waitForFunction(() => window.waited);
  assert.equal(await settled(second), 'pending', 'waits while the first page holds the engine');
  await first.evaluate(() => window.engine.unload());
  assert.equal(await second.evaluate(() => window.loading), 'loaded');
  assert.deepEqual(await greedy(second, ref.prompt, ref.tokens.length), ref.tokens);

  // The first page takes the engine over: the second's engine stops with a typed error.
  await startLocked(first, url, { takeOver: true });
  assert.equal(await first.evaluate(() => window.loading), 'loaded');
  await second.waitForFunction(() => window.takenOver);
  const stopped = await greedy(second, ref.prompt, 1);
  assert.equal(stopped.code, 'taken-over', stopped.error);
  assert.deepEqual(await greedy(first, ref.prompt, ref.tokens.length), ref.tokens);

  // Closing the page that holds the engine hands it to the page waiting for it.
  await startLocked(second, url);
  await second.waitForFunction(() => window.waited);
  await first.close();
  assert.equal(await second.evaluate(() => window.loading), 'loaded');
  assert.deepEqual(await greedy(second, ref.prompt, ref.tokens.length), ref.tokens);

  // Waiting can be cancelled.
  const third = await harness(context, server);
  await third.evaluate((url) => {
    const controller = new AbortController();
    window.loading = window.hearth.Engine.load(url, { shared: true, signal: controller.signal, onWaiting: () => controller.abort() })
      .then(() => 'loaded', (e) => e.name);
  }, url);
  assert.equal(await third.evaluate(() => window.loading), 'AbortError');
  await context.close();
});
