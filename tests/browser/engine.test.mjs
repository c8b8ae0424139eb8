// The JS API in headless Chromium on WebGPU (SwiftShader): results against llama.cpp's
// references and the native CLI, and the IndexedDB cache: chunked Range downloads, resume,
// corruption, changed files, servers without Range support, zero network on a cached load,
// refusal before download, bounded wasm memory.
//
// Run: node --test tests/browser/  (after scripts/build-web.sh; scripts/test.sh does both)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, ROOT } from './server.mjs';
import { launch, harness, fixture } from './browser.mjs';

const CHUNK = 256 * 1024; // fixture models are ~1 MB: several chunks each
const Q8 = '/tests/fixtures/tiny-q8_0.gguf';

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

/** A fresh browser profile (empty IndexedDB) with the harness page open. */
async function freshPage() {
  const context = await browser.newContext();
  return harness(context, server);
}

/** Loads `modelPath` in the page and generates greedily from a token prompt. */
function loadAndGreedy(page, modelPath, prompt, n, options = {}) {
  return page.evaluate(async ({ url, prompt, n, options }) => {
    const { Engine } = window.hearth;
    const phases = [];
    try {
      const engine = await Engine.load(url, { ...options, onProgress: (p) => phases.includes(p.phase) || phases.push(p.phase) });
      const g = await engine.generate({ tokens: prompt, maxTokens: n, temperature: 0, ignoreEos: true });
      const result = { tokens: g.tokens, finishReason: g.finishReason, networkBytes: engine.networkBytes, info: engine.info, phases };
      await engine.unload();
      return result;
    } catch (e) {
      return { error: e.message, code: e.code, name: e.name, phases };
    }
  }, { url: server.url + modelPath, prompt, n, options });
}

const modelRequests = (p) => server.requests(p).map((e) => e.range);
const chunkRange = (i, size) => `bytes=${i * CHUNK}-${Math.min((i + 1) * CHUNK, size) - 1}`;

function nativeGreedy(model, prompt, n) {
  const bin = ['target/debug/hearth', 'target/release/hearth'].map((p) => path.join(ROOT, p)).find((p) => fs.existsSync(p));
  assert.ok(bin, 'the native CLI is built by `cargo test` (scripts/test.sh runs it first)');
  const out = execFileSync(bin, ['generate', '--model', path.join(ROOT, model), '--tokens', prompt.join(','), '--max-tokens', String(n), '--temperature', '0', '--ignore-eos', '--json'], { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } });
  return JSON.parse(out.toString().trim().split('\n').at(-1)).tokens;
}

test('greedy tokens in the browser equal llama.cpp\'s and the native CLI\'s', async () => {
  const page = await freshPage();
  for (const name of ['tiny-q8_0', 'tiny-q4_k_m', 'tiny-f16-gqa-tied', 'tiny-qwen2-q4_k_m', 'tiny-qwen3-f16', 'tiny-gemma3-q4_k_m']) {
    const ref = fixture(`${name}.json`).greedy;
    const got = await loadAndGreedy(page, `/tests/fixtures/${name}.gguf`, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
    assert.equal(got.error, undefined, `${name}: ${got.error}`);
    assert.deepEqual(got.tokens, ref.tokens, `${name}: browser vs llama.cpp`);
    assert.deepEqual(got.tokens, nativeGreedy(`tests/fixtures/${name}.gguf`, ref.prompt, ref.tokens.length), `${name}: browser vs native CLI`);
    assert.deepEqual(got.phases, ['download', 'upload'], 'the upload follows the download; nothing is read twice to verify');
  }
  await page.context().close();
});

test('the GPU kernel set, which real GPUs run, gives llama.cpp\'s greedy tokens in the browser too', async () => {
  // SwiftShader normally takes the CPU-emulation kernels; forcing the GPU set runs its WGSL
  // through the browser's own shader compiler, which no native test reaches.
  const page = await freshPage();
  for (const name of ['tiny-q4_k_m', 'tiny-q6_k', 'tiny-q8_0', 'tiny-f16-gqa-tied', 'tiny-qwen2-f16', 'tiny-qwen3-q4_k_m', 'tiny-gemma3-f16']) {
    const ref = fixture(`${name}.json`).greedy;
    const got = await loadAndGreedy(page, `/tests/fixtures/${name}.gguf`, ref.prompt, ref.tokens.length, { kernels: 'gpu' });
    assert.equal(got.error, undefined, `${name}: ${got.error}`);
    assert.deepEqual(got.tokens, ref.tokens, `${name}: browser GPU kernels vs llama.cpp`);
  }
  const bad = await loadAndGreedy(page, Q8, [1], 1, { kernels: 'fastest' });
  assert.equal(bad.code, 'bad-request', bad.error);
  await page.context().close();
});

test('a second load comes from the cache with zero network requests', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const first = await loadAndGreedy(page, Q8, ref.prompt, 4, { chunkSize: CHUNK });
  assert.equal(first.networkBytes, fs.statSync(path.join(ROOT, Q8.slice(1))).size);
  server.clearLog();
  const second = await loadAndGreedy(page, Q8, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.equal(second.error, undefined, second.error);
  assert.deepEqual(second.tokens, ref.tokens);
  assert.equal(second.networkBytes, 0);
  assert.deepEqual(modelRequests(Q8), [], 'no request for the model at all');
  assert.deepEqual(second.phases, ['upload'], 'nothing to download or verify');
  const listed = await page.evaluate(() => window.hearth.cache.list());
  assert.equal(listed.length, 1);
  assert.equal(listed[0].complete, true);
  assert.equal(listed[0].storedBytes, listed[0].size);
  await page.context().close();
});

test('a download cut in the middle resumes without fetching finished chunks again', async () => {
  const page = await freshPage();
  const size = fs.statSync(path.join(ROOT, Q8.slice(1))).size;
  const ref = fixture('tiny-q8_0.json').greedy;
  // Chunks 0 and 1 arrive; the connection drops 100 kB into chunk 2.
  server.faults.set(Q8, { skip: 2, dropAfterBytes: 100_000, times: 1 });
  server.clearLog();
  const cut = await loadAndGreedy(page, Q8, ref.prompt, 4, { chunkSize: CHUNK });
  assert.equal(cut.code, 'network', `expected a dropped connection, got ${JSON.stringify(cut)}`);
  assert.match(cut.error, /resume/);
  const partial = await page.evaluate(() => window.hearth.cache.list());
  assert.equal(partial[0].complete, false);
  assert.equal(partial[0].storedChunks, 2);

  server.clearLog();
  const resumed = await loadAndGreedy(page, Q8, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.equal(resumed.error, undefined, resumed.error);
  assert.deepEqual(resumed.tokens, ref.tokens);
  const chunks = Math.ceil(size / CHUNK);
  // One byte to check the file is unchanged, then only the missing chunks.
  assert.deepEqual(modelRequests(Q8), ['bytes=0-0', ...Array.from({ length: chunks - 2 }, (_, i) => chunkRange(i + 2, size))]);
  assert.equal(resumed.networkBytes, size - 2 * CHUNK);
  await page.context().close();
});

test('a corrupted IndexedDB record is detected and fetched again', async () => {
  const page = await freshPage();
  const size = fs.statSync(path.join(ROOT, Q8.slice(1))).size;
  const ref = fixture('tiny-q8_0.json').greedy;
  assert.equal((await loadAndGreedy(page, Q8, ref.prompt, 2, { chunkSize: CHUNK })).error, undefined);
  // Flip bytes inside chunk 3's stored data, as a disk or browser bug might.
  await page.evaluate(async (key) => {
    const db = await new Promise((resolve, reject) => { const r = indexedDB.open('hearth-models'); r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
    const tx = db.transaction('chunks', 'readwrite');
    const store = tx.objectStore('chunks');
    const record = await new Promise((resolve) => { const r = store.get(key); r.onsuccess = () => resolve(r.result); });
    const bytes = new Uint8Array(record.data);
    for (let i = 1000; i < 1100; i++) bytes[i] ^= 0x5a;
    store.put(record, key);
    await new Promise((resolve) => { tx.oncomplete = resolve; });
    db.close();
  }, `${server.url}${Q8}#3`);
  server.clearLog();
  const again = await loadAndGreedy(page, Q8, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.equal(again.error, undefined, again.error);
  assert.deepEqual(again.tokens, ref.tokens);
  assert.deepEqual(modelRequests(Q8), ['bytes=0-0', chunkRange(3, size)], 'only the damaged chunk is fetched');
  server.clearLog();
  const third = await loadAndGreedy(page, Q8, ref.prompt, 2, { chunkSize: CHUNK });
  assert.equal(third.networkBytes, 0, 'the repaired cache serves the next load alone');
  await page.context().close();
});

test('a file that changed on the server between sessions is downloaded anew', async () => {
  const page = await freshPage();
  const served = '/models-test/changing.gguf';
  server.faults.set(served, { servePath: Q8, skip: 1, dropAfterBytes: 1000, times: 1 });
  const cut = await loadAndGreedy(page, served, [1, 2, 3], 2, { chunkSize: CHUNK });
  assert.equal(cut.code, 'network');
  // The file is replaced: other bytes, other validator.
  server.faults.set(served, { servePath: '/tests/fixtures/tiny-q4_0.gguf', etag: '"new-version"' });
  server.clearLog();
  const ref = fixture('tiny-q4_0.json').greedy;
  const got = await loadAndGreedy(page, served, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.equal(got.error, undefined, got.error);
  assert.deepEqual(got.tokens, ref.tokens, 'the new file\'s output, not a mix of both');
  const size = fs.statSync(path.join(ROOT, 'tests/fixtures/tiny-q4_0.gguf')).size;
  assert.deepEqual(modelRequests(served), ['bytes=0-0', ...Array.from({ length: Math.ceil(size / CHUNK) }, (_, i) => chunkRange(i, size))]);
  server.faults.delete(served);
  await page.context().close();
});

test('a server without Range support still works', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q4_k_m.json').greedy;
  const p = '/tests/fixtures/tiny-q4_k_m.gguf';
  server.faults.set(p, { noRange: true });
  server.clearLog();
  const got = await loadAndGreedy(page, p, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  server.faults.delete(p);
  assert.equal(got.error, undefined, got.error);
  assert.deepEqual(got.tokens, ref.tokens);
  assert.equal(server.requests(p).length, 1, 'one whole-file response, cut into chunks as it streamed');
  server.clearLog();
  assert.equal((await loadAndGreedy(page, p, ref.prompt, 2, { chunkSize: CHUNK })).networkBytes, 0);
  await page.context().close();
});

test('a split model loads from its first part\'s URL and from its files', async () => {
  const page = await freshPage();
  const meta = fixture('split/split.json');
  const first = `/tests/fixtures/split/${meta.parts[0]}`;
  const got = await loadAndGreedy(page, first, meta.prompt, meta.tokens.length, { chunkSize: CHUNK });
  assert.equal(got.error, undefined, got.error);
  assert.deepEqual(got.tokens, meta.tokens);
  for (const part of meta.parts) assert.ok(server.requests(`/tests/fixtures/split/${part}`).length > 0, `${part} was fetched`);
  const fromFiles = await page.evaluate(async ({ base, parts, prompt, n }) => {
    // The parts as Files, as a file picker would give them (in any order).
    const files = await Promise.all(parts.reverse().map(async (name) => new File([await (await fetch(`${base}/${name}`)).blob()], name)));
    const engine = await window.hearth.Engine.load(files);
    const g = await engine.generate({ tokens: prompt, maxTokens: n, temperature: 0, ignoreEos: true });
    await engine.unload();
    return g.tokens;
  }, { base: `${server.url}/tests/fixtures/split`, parts: [...meta.parts], prompt: meta.prompt, n: meta.tokens.length });
  assert.deepEqual(fromFiles, meta.tokens);
  await page.context().close();
});

test('a model that cannot fit is refused after one request for its header', async () => {
  const page = await freshPage();
  server.clearLog();
  const got = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, gpuMemoryBytes: 512 << 10 });
  assert.equal(got.code, 'out-of-memory');
  // What it needs, what the GPU has, and what would fit.
  assert.match(got.error, /needs about [\d.]+ MiB of GPU memory at a \d+-token context window \([\d.]+ MiB of weights, .*\), but the GPU has 0\.5 MiB; even a short window does not fit beside [\d.]+ MiB of weights: choose .*a smaller model/);
  assert.deepEqual(modelRequests(Q8), [chunkRange(0, fs.statSync(path.join(ROOT, Q8.slice(1))).size)]);
  const huge = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, contextLength: 1 << 28 });
  assert.match(huge.error ?? '', /context window of \d+ tokens needs [\d.]+ MiB per KV-cache buffer/);
  await page.context().close();
});

test('a device with just enough memory runs the model, its window sized to what fits', async () => {
  const page = await freshPage();
  // Without a budget: the trained window (the KV cache grows only as the conversation does).
  const free = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK });
  assert.equal(free.error, undefined, free.error);
  assert.equal(free.info.contextLength, free.info.trainedContextLength);
  // Exactly what the plan says it needs: loaded, the same window.
  const exact = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, gpuMemoryBytes: free.info.gpuBytesNeeded });
  assert.equal(exact.error, undefined, exact.error);
  assert.equal(exact.info.contextLength, free.info.contextLength);
  // A budget that holds a quarter of the window: that quarter, by default.
  const quarter = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, contextLength: free.info.contextLength / 4 });
  const budget = quarter.info.gpuBytesNeeded;
  const shorter = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, gpuMemoryBytes: budget });
  assert.equal(shorter.error, undefined, shorter.error);
  assert.equal(shorter.info.contextLength, free.info.contextLength / 4);
  // A window beyond the budget's reach: refused, saying which window fits, and that one loads.
  const asked = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, gpuMemoryBytes: budget, contextLength: 4 * free.info.contextLength });
  assert.equal(asked.code, 'out-of-memory');
  assert.match(asked.error, /but the GPU has [\d.]+ MiB; a context window of up to \d+ tokens fits/);
  const fits = Number(asked.error.match(/up to (\d+) tokens/)[1]);
  assert.ok(fits >= shorter.info.contextLength && fits <= free.info.contextLength, `${fits}`);
  const longest = await loadAndGreedy(page, Q8, [1], 1, { chunkSize: CHUNK, gpuMemoryBytes: budget, contextLength: fits });
  assert.equal(longest.error, undefined, longest.error);
  assert.equal(longest.info.contextLength, fits);
  await page.context().close();
});

test('server errors mid-download end in a clear, resumable state', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const size = fs.statSync(path.join(ROOT, Q8.slice(1))).size;
  server.faults.set(Q8, { skip: 1, status: 500, times: 1 });
  const failed = await loadAndGreedy(page, Q8, ref.prompt, 2, { chunkSize: CHUNK });
  assert.equal(failed.code, 'http-500');
  assert.match(failed.error, /HTTP 500/);
  server.faults.set(Q8, { skip: 1, status: 416, times: 1 });
  const rejected = await loadAndGreedy(page, Q8, ref.prompt, 2, { chunkSize: CHUNK });
  assert.equal(rejected.code, 'http-416');
  assert.match(rejected.error, /rejected the byte range/);
  const listed = await page.evaluate(() => window.hearth.cache.list());
  assert.equal(listed[0].complete, false, 'nothing counts as cached after a failure');
  server.clearLog();
  const resumed = await loadAndGreedy(page, Q8, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.deepEqual(resumed.tokens, ref.tokens);
  assert.ok(!modelRequests(Q8).includes(chunkRange(0, size)), 'the chunk that arrived is kept');
  await page.context().close();
});

test('a wrong Content-Length never yields a cached model', async () => {
  const page = await freshPage();
  const p = '/tests/fixtures/tiny-q4_0.gguf';
  const size = fs.statSync(path.join(ROOT, p.slice(1))).size;
  server.faults.set(p, { noRange: true, contentLength: size + 5000, times: 1 });
  const got = await loadAndGreedy(page, p, [1], 1, { chunkSize: CHUNK });
  assert.ok(['network', 'bad-length'].includes(got.code), JSON.stringify(got));
  const listed = await page.evaluate(() => window.hearth.cache.list());
  assert.equal(listed[0].complete, false);
  await page.context().close();
});

test('a full disk (IndexedDB quota exceeded) ends in a clear error and the download resumes once there is room', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const size = fs.statSync(path.join(ROOT, Q8.slice(1))).size;
  // Chromium's own quota enforcement, shrunk for this origin: room for about two chunks.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: Math.round(2.5 * CHUNK) });
  const full = await loadAndGreedy(page, Q8, ref.prompt, 2, { chunkSize: CHUNK });
  assert.equal(full.code, 'quota', JSON.stringify(full));
  assert.match(full.error, /storage is full .* resumes where it stopped/);
  const partial = await page.evaluate(() => window.hearth.cache.list());
  assert.equal(partial.length, 1);
  assert.equal(partial[0].complete, false, 'never marked complete');
  assert.ok(partial[0].storedChunks >= 1 && partial[0].storedChunks < partial[0].chunks, JSON.stringify(partial));
  const kept = partial[0].storedChunks;

  await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url }); // room again
  server.clearLog();
  const resumed = await loadAndGreedy(page, Q8, ref.prompt, ref.tokens.length, { chunkSize: CHUNK });
  assert.equal(resumed.error, undefined, resumed.error);
  assert.deepEqual(resumed.tokens, ref.tokens);
  assert.equal(resumed.networkBytes, size - kept * CHUNK, 'only the chunks that did not fit are fetched');
  await page.context().close();
});

test('bad addresses fail with clear messages', async () => {
  const page = await freshPage();
  const missing = await loadAndGreedy(page, '/tests/fixtures/no-such-model.gguf', [1], 1);
  assert.equal(missing.code, 'http-404');
  assert.match(missing.error, /was not found/);
  const notGguf = await loadAndGreedy(page, '/tests/browser/harness.html', [1], 1);
  assert.match(notGguf.error, /not a GGUF file/);
  const badScheme = await page.evaluate(() => window.hearth.Engine.load('ftp://example.invalid/x.gguf').catch((e) => e.message));
  assert.match(badScheme, /not a model address/);
  await page.context().close();
});

/** Broken copies of a fixture, as users might have them, written where the server serves. */
function malformedModels() {
  const dir = path.join(ROOT, 'tests/artifacts/malformed');
  fs.mkdirSync(dir, { recursive: true });
  const good = fs.readFileSync(path.join(ROOT, Q8.slice(1)));
  const edit = (find, replace) => {
    const bytes = Buffer.from(good);
    const at = bytes.indexOf(find);
    assert.ok(at > 0, `${find} is in the fixture`);
    bytes.write(replace, at);
    return bytes;
  };
  const files = {
    'truncated.gguf': good.subarray(0, Math.floor(good.length / 2)),
    'cut-header.gguf': good.subarray(0, 300),
    'other-arch.gguf': edit('phi3', 'mamb'),
    'missing-tensor.gguf': edit('blk.1.ffn_down.weight', 'blk.1.ffn_dowX.weight'),
    'not-a-model.gguf': Buffer.from('<!doctype html><title>Sign in</title>'.padEnd(4096, ' ')),
  };
  for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), bytes);
  return { dir: '/tests/artifacts/malformed' };
}

test('malformed models fail with typed errors, by URL and from files, without downloading the weights', async () => {
  const page = await freshPage();
  const { dir } = malformedModels();
  const expected = {
    'truncated.gguf': ['bad-model', /truncated/],
    'cut-header.gguf': ['bad-model', /truncated|more than the file can hold/],
    'other-arch.gguf': ['unsupported-model', /architecture 'mamb' is not supported/],
    'missing-tensor.gguf': ['bad-model', /tensor 'blk\.1\.ffn_down\.weight' is missing/],
    'not-a-model.gguf': ['not-gguf', /not a GGUF file/],
  };
  for (const [name, [code, message]] of Object.entries(expected)) {
    server.clearLog();
    const byUrl = await loadAndGreedy(page, `${dir}/${name}`, [1], 1, { chunkSize: CHUNK });
    assert.equal(byUrl.name, 'HearthError', `${name}: ${JSON.stringify(byUrl)}`);
    assert.equal(byUrl.code, code, `${name}: ${byUrl.error}`);
    assert.match(byUrl.error, message);
    assert.ok(server.requests(`${dir}/${name}`).length <= 1, `${name}: refused after the header request`);
    const fromFile = await page.evaluate(async ({ url, name }) => {
      const file = new File([await (await fetch(url)).blob()], name);
      return window.hearth.Engine.load(file).then(() => ({}), (e) => ({ code: e.code, error: e.message }));
    }, { url: `${server.url}${dir}/${name}`, name });
    assert.equal(fromFile.code, code, `${name} from a file: ${fromFile.error}`);
  }
  const listed = await page.evaluate(() => window.hearth.cache.list());
  assert.ok(listed.every((m) => !m.complete), 'no broken model counts as cached');
  await page.context().close();
});

test('requests the model cannot serve get typed errors and leave the engine usable', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const out = await page.evaluate(async ({ url, ref }) => {
    const engine = await window.hearth.Engine.load(url, { contextLength: 16 });
    const fail = (request) => engine.generate(request).then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message }));
    const tooLong = await fail({ tokens: Array.from({ length: 40 }, (_, i) => 1 + (i % 50)), maxTokens: 1 });
    const badToken = await fail({ tokens: [1, 999999], maxTokens: 1 });
    const noPrompt = await fail({ maxTokens: 1 });
    const after = await engine.generate({ tokens: ref.prompt, maxTokens: 3, temperature: 0, ignoreEos: true });
    await engine.unload();
    return { tooLong, badToken, noPrompt, after: after.tokens };
  }, { url: server.url + Q8, ref });
  assert.equal(out.tooLong.code, 'context-full', JSON.stringify(out.tooLong));
  assert.match(out.tooLong.message, /needs 4\d tokens but the context window holds 16/);
  assert.equal(out.badToken.code, 'bad-token');
  assert.match(out.badToken.message, /token id 999999 is outside the model's vocabulary/);
  assert.equal(out.noPrompt.code, 'bad-request');
  assert.deepEqual(out.after, ref.tokens.slice(0, 3), 'the engine still answers correctly');
  await page.context().close();
});

test('streaming, abort, queued calls and the OpenAI-style API', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const out = await page.evaluate(async ({ url, ref }) => {
    const { Engine } = window.hearth;
    const engine = await Engine.load(url, { chunkSize: 256 * 1024 });
    const n = ref.tokens.length;
    // Streaming yields the same tokens as the plain call.
    const streamed = [];
    const stream = engine.generateStream({ tokens: ref.prompt, maxTokens: n, temperature: 0, ignoreEos: true });
    for await (const piece of stream) if (piece.token !== undefined) streamed.push(piece.token);
    const streamResult = await stream.result;
    // Abort after three tokens; the engine stays usable.
    const controller = new AbortController();
    let seen = 0;
    const aborted = await engine.generate({ tokens: ref.prompt, maxTokens: n, temperature: 0, ignoreEos: true, signal: controller.signal, onToken: (p) => { if (p.token !== undefined && ++seen === 3) controller.abort(); } });
    // Two calls at once run one after the other, each with its own full answer.
    const [a, b] = await Promise.all([
      engine.generate({ tokens: ref.prompt, maxTokens: n, temperature: 0, ignoreEos: true }),
      engine.generate({ tokens: ref.prompt, maxTokens: n, temperature: 0, ignoreEos: true }),
    ]);
    // Seeded sampling is reproducible.
    const s1 = await engine.generate({ tokens: ref.prompt, maxTokens: 8, temperature: 1, seed: 7, ignoreEos: true });
    const s2 = await engine.generate({ tokens: ref.prompt, maxTokens: 8, temperature: 1, seed: 7, ignoreEos: true });
    // OpenAI shape, streamed and not.
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 5, temperature: 0 })) chunks.push(c);
    const whole = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, temperature: 0 });
    const tokens = await engine.tokenize('hello world');
    const text = await engine.detokenize(tokens);
    await engine.unload();
    const afterUnload = await engine.generate({ prompt: 'x' }).catch((e) => e.message);
    return { streamed, streamResult: streamResult.tokens, aborted, a: a.tokens, b: b.tokens, s1: s1.tokens, s2: s2.tokens, chunks, whole, text, afterUnload };
  }, { url: server.url + Q8, ref });
  assert.deepEqual(out.streamed, ref.tokens);
  assert.deepEqual(out.streamResult, ref.tokens);
  assert.equal(out.aborted.finishReason, 'abort');
  assert.ok(out.aborted.tokens.length >= 3 && out.aborted.tokens.length < ref.tokens.length, `stopped early: ${out.aborted.tokens.length}`);
  assert.deepEqual(out.a, ref.tokens);
  assert.deepEqual(out.b, ref.tokens);
  assert.deepEqual(out.s1, out.s2);
  assert.equal(out.chunks[0].object, 'chat.completion.chunk');
  assert.equal(out.chunks[0].choices[0].delta.role, 'assistant');
  const last = out.chunks.at(-1);
  assert.ok(['stop', 'length'].includes(last.choices[0].finish_reason));
  assert.equal(last.usage.completion_tokens, out.whole.usage.completion_tokens);
  const streamedText = out.chunks.map((c) => c.choices[0].delta.content ?? '').join('');
  assert.equal(streamedText, out.whole.choices[0].message.content);
  assert.equal(out.whole.object, 'chat.completion');
  assert.equal(out.text, 'hello world');
  assert.match(out.afterUnload, /unloaded/);
  await page.context().close();
});

test('a lost GPU device is reported and a new engine works', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const out = await page.evaluate(async ({ url, ref }) => {
    const { Engine } = window.hearth;
    const engine = await Engine.load(url, { chunkSize: 256 * 1024 });
    let reported = null;
    engine.onDeviceLost = (e) => { reported = e.message; };
    await engine.rpc.call('loseDevice');
    const failed = await engine.generate({ tokens: ref.prompt, maxTokens: 4, temperature: 0 }).then(() => 'no error', (e) => `${e.code}: ${e.message}`);
    const again = await engine.generate({ tokens: ref.prompt, maxTokens: 4, temperature: 0 }).then(() => 'no error', (e) => `${e.code}: ${e.message}`);
    const fresh = await Engine.load(url, { chunkSize: 256 * 1024 });
    const g = await fresh.generate({ tokens: ref.prompt, maxTokens: ref.tokens.length, temperature: 0, ignoreEos: true });
    return { reported, failed, again, tokens: g.tokens };
  }, { url: server.url + Q8, ref });
  assert.match(out.failed, /lost/i);
  assert.match(out.reported ?? '', /GPU device was lost/);
  assert.match(out.again, /^device-lost: .*new engine/);
  assert.deepEqual(out.tokens, ref.tokens, 'a new engine loads (from the cache) and answers');
  await page.context().close();
});

test('SmolLM2 answers like llama.cpp, with wasm memory far below the model size', async () => {
  const ref = fixture('smollm2/reference.json');
  const modelPath = `/models/${ref.model}`;
  assert.ok(fs.existsSync(path.join(ROOT, modelPath.slice(1))), 'run scripts/fetch-default-model.sh');
  const page = await freshPage();
  // Few tokens: SwiftShader runs this 135M model at well under a token per second.
  const n = 6;
  const out = await page.evaluate(async ({ url, question, n }) => {
    const { Engine } = window.hearth;
    let peak = 0;
    const engine = await Engine.load(url, { contextLength: 256, onProgress: () => {} });
    const memory = await engine.stats();
    const messages = [{ role: 'user', content: question }];
    const prompt = await engine.applyChatTemplate(messages);
    const promptTokens = await engine.tokenize(prompt);
    const g = await engine.generate({ messages, maxTokens: n, temperature: 0, ignoreEos: true });
    await engine.unload();
    return { memory, prompt, promptTokens, tokens: g.tokens, size: engine.info.fileBytes };
  }, { url: server.url + modelPath, question: ref.question, n });
  assert.equal(out.prompt, ref.prompt);
  assert.deepEqual(out.promptTokens, ref.prompt_tokens);
  assert.deepEqual(out.tokens, ref.greedy_answer.slice(0, n));
  assert.ok(ref.greedy_margins.slice(0, n).every((m) => m > 1), 'the compared tokens are clear choices for llama.cpp');
  // 98 MB of weights passed through 32 MiB chunks; wasm memory never held the model.
  assert.ok(out.memory.wasmMemoryBytes < out.size / 2, `wasm memory ${out.memory.wasmMemoryBytes} bytes for a ${out.size}-byte model`);
  await page.context().close();
});

test('Gemma 3 270M answers like llama.cpp in the browser: its 262,144-token vocabulary and built-in turn format', async () => {
  const ref = fixture('gemma3/reference.json');
  const modelPath = `/models/${ref.model}`;
  assert.ok(fs.existsSync(path.join(ROOT, modelPath.slice(1))), 'run scripts/fetch-gemma3.sh');
  const page = await freshPage();
  const n = 6;
  const hard = ref.tokenizations.find((t) => t.special && t.text.includes('Köln'));
  const out = await page.evaluate(async ({ url, question, n, hardText }) => {
    const { Engine } = window.hearth;
    const engine = await Engine.load(url, { contextLength: 256, onProgress: () => {} });
    const messages = [{ role: 'user', content: question }];
    const prompt = await engine.applyChatTemplate(messages);
    const promptTokens = await engine.tokenize(prompt);
    const hardTokens = await engine.tokenize(hardText);
    const g = await engine.generate({ messages, maxTokens: n, temperature: 0, ignoreEos: true });
    await engine.unload();
    return { prompt, promptTokens, hardTokens, tokens: g.tokens, info: engine.info };
  }, { url: server.url + modelPath, question: ref.question, n, hardText: hard.text });
  assert.equal(out.info.architecture, 'gemma3');
  assert.equal(out.info.nVocab, 262144);
  assert.equal(out.prompt, '<bos>' + ref.prompt, 'the Gemma turn format, its BOS written by the template');
  assert.deepEqual(out.promptTokens, ref.cases[0].tokens, 'one BOS, turn markers as tokens');
  assert.deepEqual(out.hardTokens, hard.ids);
  assert.deepEqual(out.tokens, ref.greedy_answer.slice(0, n));
  assert.ok(ref.greedy_margins.slice(0, n).every((m) => m > 1), 'the compared tokens are clear choices for llama.cpp');
  await page.context().close();
});
