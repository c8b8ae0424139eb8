// The same measurements as Hearth's www/bench.html, run by wllama (llama.cpp compiled to
// WebAssembly, with its WebGPU backend or its multi-threaded CPU build), for a side-by-side
// comparison in one browser. Query: model, prompt-lens, ctx-lens, decode-tokens,
// gpu-layers (0 = CPU build; default 999 = everything on WebGPU), threads.
// Prompts are a repeated word, so token counts come from llama.cpp's own timings.

import { Wllama } from '/wllama/index.js';

const params = new URLSearchParams(location.search);
const lengths = (name, fallback) => (params.get(name) ?? fallback).split(',').map(Number).filter((n) => n > 0);
const promptLens = lengths('prompt-lens', '128,512');
const ctxLens = lengths('ctx-lens', '128,1024');
const decodeTokens = Number(params.get('decode-tokens') ?? 32);
const gpuLayers = Number(params.get('gpu-layers') ?? 999);
const out = document.getElementById('result');

async function main() {
  // llama.cpp's own log says where the weights went: "load_tensors: <backend> model buffer
  // size = …" per backend. Its WebGPU backend needs shader-f16; where the adapter lacks it
  // (SwiftShader) the "webgpu" build silently runs everything on the CPU.
  const log = [];
  const keep = (...args) => { const line = args.join(' ').trim(); if (/offload|webgpu|buffer size/i.test(line)) log.push(line); };
  const logger = { debug: keep, log: keep, warn: keep, error: keep };
  const wllama = new Wllama({ default: '/wllama/wasm/wllama.wasm' }, { logger });
  const nCtx = Math.max(...promptLens, ...ctxLens.map((c) => c + decodeTokens)) + 64;
  const started = performance.now();
  const config = { n_ctx: nCtx, n_batch: 512, n_gpu_layers: gpuLayers };
  // wllama defaults to half the cores; a fair comparison gives it all of them.
  if (gpuLayers === 0) config.n_threads = Number(params.get('threads') ?? navigator.hardwareConcurrency);
  await wllama.loadModelFromUrl(new URL(params.get('model'), location.href).href, { ...config, useCache: false });
  const loadS = (performance.now() - started) / 1000;
  // A repeated word; the warm-up measures how many tokens one repetition makes, so prompts can
  // be sized to the lengths asked for (the reports give llama.cpp's own counts).
  let tokensPerWord = 1;
  const prompt = (n) => Array.from({ length: Math.max(1, Math.round(n / tokensPerWord)) }, () => ' hello').join('');
  const complete = (n, maxTokens) => wllama.createCompletion({ prompt: prompt(n), max_tokens: maxTokens, temperature: 0, cache_prompt: false, ignore_eos: true });
  const warm = await complete(64, 2);
  tokensPerWord = warm.timings.prompt_n / 64;
  const prefill = [];
  for (const len of promptLens) {
    const r = await complete(len, 1);
    prefill.push({ prompt_len: r.timings.prompt_n, tokens_per_s: r.timings.prompt_per_second });
  }
  const decode = [];
  for (const ctx of ctxLens) {
    const r = await complete(ctx, decodeTokens);
    decode.push({ ctx_len: r.timings.prompt_n, tokens_per_s: r.timings.predicted_per_second, generated: r.timings.predicted_n });
  }
  return {
    engine: 'wllama',
    build: gpuLayers > 0 ? 'webgpu' : wllama.isMultithread() ? 'cpu-multithread' : 'cpu-single-thread',
    threads: wllama.getNumThreads(),
    webgpu_supported: wllama.isSupportWebGPU(),
    load_s: loadS,
    weights_on: [...new Set(log.map((l) => /load_tensors:\s+(\S+) model buffer size/.exec(l)?.[1]).filter(Boolean))],
    native_log: log,
    prefill,
    decode,
  };
}

main().then(
  (report) => { out.textContent = JSON.stringify(report); document.body.dataset.state = 'done'; },
  (e) => { out.textContent = JSON.stringify({ error: String(e?.message ?? e) }); document.body.dataset.state = 'failed'; },
);
