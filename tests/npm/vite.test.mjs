// The npm package as a web developer gets it: `npm pack`, installed by its name from the
// tarball into a fresh Vite app, built, served on 127.0.0.1 and run in headless Chromium; and
// imported by that name from a plain ES module page (an import map, no bundler). The streamed
// chat completion must equal the native CLI's greedy output for the same prompt. A TypeScript
// consumer type-checks against the package's declarations.
//
// Needs pkg/ (scripts/build-npm.sh) and the npm registry for vite and typescript.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, ROOT } from '../browser/server.mjs';
import { launch } from '../browser/browser.mjs';

const MODEL = 'tiny-q8_0.gguf';
// The package's name, as the build gave it (tests/npm/name.test.mjs holds the docs to it).
let NAME;
const MAX_TOKENS = 16;
let app;
let server;
let browser;

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error', npm_config_fund: 'false', npm_config_audit: 'false' } }).toString();

before(() => {
  assert.ok(fs.existsSync(path.join(ROOT, 'pkg/package.json')), 'run scripts/build-npm.sh first');
  NAME = JSON.parse(fs.readFileSync(path.join(ROOT, 'pkg/package.json'), 'utf8')).name;
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-vite-'));
  const tarball = run('npm', ['pack', '--pack-destination', app, path.join(ROOT, 'pkg')], ROOT).trim().split('\n').at(-1);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({
    name: 'hearth-vite-consumer', private: true, type: 'module',
    dependencies: { [NAME]: `file:./${tarball}` },
    devDependencies: { vite: '^8', typescript: '^5' },
  }, null, 1));
  fs.writeFileSync(path.join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><title>consumer</title><pre id="out"></pre><script type="module" src="/main.js"></script>\n');
  // The same app without a bundler: the browser resolves the package's name by an import map.
  const importMap = JSON.stringify({ imports: { [NAME]: `/node_modules/${NAME}/hearth.js` } });
  fs.writeFileSync(path.join(app, 'esm.html'), `<!doctype html><meta charset="utf-8"><title>plain ESM consumer</title><script type="importmap">${importMap}</script><pre id="out"></pre><script type="module" src="/main.js"></script>\n`);
  // What a developer writes: load a model, stream a chat completion.
  fs.writeFileSync(path.join(app, 'main.js'), `
import { Engine } from '${NAME}';
const model = new URLSearchParams(location.search).get('model');
try {
  const engine = await Engine.load(model);
  const messages = [{ role: 'user', content: 'Hello from Vite' }];
  const prompt = await engine.applyChatTemplate(messages);
  let text = '';
  let chunks = 0;
  let last = null;
  const stream = await engine.chat.completions.create({ messages, stream: true, temperature: 0, max_tokens: ${MAX_TOKENS} });
  for await (const chunk of stream) { text += chunk.choices[0].delta.content ?? ''; chunks += 1; last = chunk; }
  window.result = { prompt, text, chunks, usage: last.usage, finish: last.choices[0].finish_reason };
} catch (e) {
  window.result = { error: e.message };
}
document.getElementById('out').textContent = JSON.stringify(window.result);
`);
  fs.writeFileSync(path.join(app, 'consumer.ts'), `
import { Engine, cache, HearthError, type ChatCompletionChunk, type LoadProgress, type GenerateResult } from '${NAME}';
export async function demo(file: File): Promise<string> {
  const engine: Engine = await Engine.load(file, { onProgress: (p: LoadProgress) => console.log(p.phase, p.loaded / p.total), contextLength: 2048 });
  const result: GenerateResult = await engine.generate({ prompt: 'Hi', maxTokens: 8, temperature: 0 });
  const ids: number[] = result.tokens;
  let text = '';
  const stream = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], stream: true });
  for await (const chunk of stream) { const c: ChatCompletionChunk = chunk; text += c.choices[0].delta.content ?? ''; }
  const whole = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] });
  const models = await cache.list();
  if (models.some((m) => !m.complete)) throw new HearthError('partial', 'test');
  await engine.unload();
  return text + whole.choices[0].message.content + ids.length + result.stats?.decodeTokensPerS;
}
`);
  run('npm', ['install'], app);
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (app) fs.rmSync(app, { recursive: true, force: true });
});

test('the declarations type-check a TypeScript consumer', () => {
  run('npx', ['tsc', '--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler', '--lib', 'es2022,dom,dom.iterable', 'consumer.ts'], app);
  // And they are not vacuous: a wrong use fails.
  fs.writeFileSync(path.join(app, 'wrong.ts'), `import { Engine } from '${NAME}';\nexport const x: Promise<number> = Engine.load('u');\n`);
  assert.throws(() => run('npx', ['tsc', '--noEmit', '--strict', '--target', 'es2022', '--module', 'esnext', '--moduleResolution', 'bundler', '--lib', 'es2022,dom', 'wrong.ts'], app));
});

/** Opens `page` of an app served from `root` and returns what its main.js reported. */
async function runApp(root, page) {
  server = await startServer({ root, mounts: { '/fixtures/': path.join(ROOT, 'tests/fixtures') } });
  browser ??= await launch();
  const tab = await browser.newPage();
  await tab.goto(`${server.url}/${page}?model=${encodeURIComponent(`${server.url}/fixtures/${MODEL}`)}`);
  await tab.waitForFunction(() => window.result !== undefined, null, { timeout: 180_000 });
  const result = await tab.evaluate(() => window.result);
  await tab.close();
  await server.close();
  server = undefined;
  assert.equal(result.error, undefined, result.error);
  return result;
}

/** The streamed reply must be the native CLI's greedy reply to the same prompt. */
function assertNativeReply(result) {
  const bin = ['target/debug/hearth', 'target/release/hearth'].map((p) => path.join(ROOT, p)).find((p) => fs.existsSync(p));
  assert.ok(bin, 'the native CLI is built by `cargo test`');
  const native = JSON.parse(execFileSync(bin, ['generate', '--model', path.join(ROOT, 'tests/fixtures', MODEL), '--prompt', result.prompt, '--max-tokens', String(MAX_TOKENS), '--temperature', '0', '--json'], { env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } }).toString().trim().split('\n').at(-1));
  assert.ok(native.tokens.length > 0);
  assert.equal(result.text, native.text, 'streamed text equals the native greedy text');
  assert.equal(result.usage.completion_tokens, native.tokens.length);
  assert.ok(result.chunks >= 3, 'it streamed in pieces');
}

test('a Vite build of an app using the package streams the native CLI\'s greedy reply', async () => {
  run('npx', ['vite', 'build'], app);
  const dist = path.join(app, 'dist');
  assert.ok(fs.readdirSync(path.join(dist, 'assets')).some((f) => f.endsWith('.wasm')), 'Vite emitted the wasm as an asset');
  assertNativeReply(await runApp(dist, ''));
});

test('a page without a bundler imports the package by its name (an import map)', async () => {
  assertNativeReply(await runApp(app, 'esm.html'));
});
