#!/usr/bin/env node
// Benchmarks Hearth in headless Chromium (www/bench.html, the same JSON as `hearth bench`)
// and, with --vs-wllama, wllama (llama.cpp for the web) on the same GGUF in the same browser:
// its WebGPU build and its multi-threaded CPU build. Prints each report and the ratios.
//
//   node scripts/bench-browser.mjs --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
//        [--prompt-lens 64,256] [--ctx-lens 64] [--decode-tokens 16] [--kernels auto|gpu|cpu] [--vs-wllama]
//        [--json-schema scripts/bench/records.schema.json]  (decode under it too: structured output's cost)
// Needs www/pkg (scripts/build-web.sh) and `npm ci`.

import path from 'node:path';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer, ROOT } from '../tests/browser/server.mjs';
import { launch } from '../tests/browser/browser.mjs';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/SmolLM2-135M-Instruct.Q4_1.gguf' },
    'prompt-lens': { type: 'string', default: '64,256' },
    'ctx-lens': { type: 'string', default: '64' },
    'decode-tokens': { type: 'string', default: '16' },
    'vs-wllama': { type: 'boolean', default: false },
    'timeout-min': { type: 'string', default: '30' },
    // Hearth's kernel set: auto (by adapter), gpu or cpu.
    kernels: { type: 'string', default: 'auto' },
    'json-schema': { type: 'string' },
  },
});
const model = path.resolve(args.model);
if (!fs.existsSync(model)) throw new Error(`no model at ${model}`);
const query = new URLSearchParams({ model: `/bench-model/${path.basename(model)}`, 'prompt-lens': args['prompt-lens'], 'ctx-lens': args['ctx-lens'], 'decode-tokens': args['decode-tokens'], kernels: args.kernels });
const schema = args['json-schema'] && path.resolve(args['json-schema']);
if (schema) query.set('json-schema', `/bench-schema/${path.basename(schema)}`);

// Cross-origin isolation lets wllama use threads (SharedArrayBuffer); Hearth needs none of it.
const server = await startServer({
  root: path.join(ROOT, 'www'),
  headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  mounts: { '/bench-model/': path.dirname(model), '/wllama/': path.join(ROOT, 'node_modules/@wllama/wllama/esm'), '/bench-wllama/': path.join(ROOT, 'scripts/bench'), ...(schema ? { '/bench-schema/': path.dirname(schema) } : {}) },
});
const browser = await launch();
const timeout = Number(args['timeout-min']) * 60_000;

async function runPage(url, label) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[${label}] ${m.text()}`); });
  const started = Date.now();
  await page.goto(`${server.url}${url}`);
  await page.waitForSelector('body[data-state="done"], body[data-state="failed"]', { timeout });
  const report = JSON.parse(await page.textContent('#result'));
  await context.close();
  console.log(`${label} (${((Date.now() - started) / 1000).toFixed(0)} s): ${JSON.stringify(report)}`);
  return report;
}

const ratio = (a, b) => (a && b ? (a / b).toFixed(2) : 'n/a');
try {
  const hearth = await runPage(`/bench.html?${query}&run=1`, 'hearth');
  if (args['vs-wllama']) {
    const peers = [];
    for (const gpuLayers of [999, 0]) {
      peers.push(await runPage(`/bench-wllama/wllama.html?${query}&gpu-layers=${gpuLayers}`, gpuLayers ? 'wllama webgpu' : 'wllama cpu'));
    }
    for (const peer of peers) {
      if (peer.error || hearth.error) continue;
      const p = hearth.prefill.map((h, i) => `${h.prompt_len} tokens ${ratio(h.tokens_per_s, peer.prefill[i]?.tokens_per_s)}×`).join(', ');
      const d = hearth.decode.map((h, i) => `ctx ${h.ctx_len} ${ratio(h.tokens_per_s, peer.decode[i]?.tokens_per_s)}×`).join(', ');
      // The WebGPU build falls back to the CPU where its backend cannot start (it requires
      // shader-f16): say where the weights really were.
      const where = peer.weights_on?.length ? `weights on ${peer.weights_on.join(' + ')}` : 'weights on an unknown backend';
      console.log(`Hearth / wllama ${peer.build} build (${peer.threads} threads, ${where}): prefill ${p}; decode ${d}`);
    }
  }
} finally {
  await browser.close();
  await server.close();
}
