// The in-browser benchmark: what `hearth bench --json` measures natively, through the JS API.
// Query parameters (model, prompt-lens, ctx-lens, decode-tokens, chunk-size, kernels: auto,
// gpu or cpu; json-schema: the URL of a JSON schema to decode under as well, beside decoding
// without it) fill the form and, with `run=1`, start it: scripts/bench-browser.mjs drives it
// that way and reads #result.

import { Engine, modelPartUrls, resolveModelUrl } from './pkg/hearth.js';
import { getManifest, readStoredChunk } from './pkg/store.js';

const form = document.getElementById('bench-form');
const status = document.getElementById('status');
const table = document.getElementById('table');
const result = document.getElementById('result');
const params = new URLSearchParams(location.search);
for (const name of ['model', 'prompt-lens', 'ctx-lens', 'decode-tokens', 'json-schema']) {
  if (params.has(name)) form.elements[name].value = params.get(name);
}

const lengths = (text) => text.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);

/** Deterministic token ids (xorshift), so runs are comparable. */
function randomTokens(n, nVocab, seed) {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % nVocab;
  });
}

function addRow(what, tps, gbps) {
  const row = table.tBodies[0].insertRow();
  for (const text of [what, tps.toFixed(2), gbps === undefined ? '' : gbps.toFixed(2)]) row.insertCell().textContent = text;
  table.hidden = false;
}

async function run({ model, promptLens, ctxLens, decodeTokens, chunkSize, kernels, jsonSchema }) {
  table.tBodies[0].replaceChildren();
  result.textContent = '';
  const schema = jsonSchema ? await fetchSchema(jsonSchema) : null;
  const contextLength = Math.max(...promptLens, ...ctxLens.map((c) => c + decodeTokens)) + 1;
  const load = async () => {
    status.textContent = `Loading ${model}…`;
    const started = performance.now();
    let downloadEnd = null; // when the download reported its last byte
    const engine = await Engine.load(model, {
      contextLength,
      chunkSize,
      kernels,
      onProgress: (p) => {
        status.textContent = `${p.phase}: ${(p.loaded / 1e6).toFixed(0)} / ${(p.total / 1e6).toFixed(0)} MB`;
        if (p.phase === 'download' && p.total > 0 && p.loaded >= p.total) downloadEnd ??= performance.now();
      },
    });
    const downloadS = downloadEnd === null ? 0 : (downloadEnd - started) / 1000;
    return { engine, loadS: (performance.now() - started) / 1000, downloadS };
  };
  // load_s is a load from the cache: a first visit downloads the model, then loads it again.
  let { engine, loadS, downloadS } = await load();
  let report;
  // A first visit: the load beside its download (until the last byte came in).
  let firstLoad = null;
  if (engine.networkBytes > 0) {
    firstLoad = { load_s: loadS, download_s: downloadS, network_bytes: engine.networkBytes };
    await engine.unload();
    ({ engine, loadS } = await load());
  }
  try {
    const { info, adapter } = engine;
    const generate = async (tokens, maxTokens, responseFormat) => {
      await engine.resetChat();
      return (await engine.generate({ tokens, maxTokens, temperature: 0, ignoreEos: true, responseFormat })).stats;
    };
    status.textContent = 'Warming up…';
    await generate(randomTokens(8, info.nVocab, 1), 2);

    const prefill = [];
    for (const len of promptLens) {
      status.textContent = `Prefill of ${len} tokens…`;
      const stats = await generate(randomTokens(len, info.nVocab, len), 1);
      prefill.push({ prompt_len: len, tokens_per_s: stats.prefillTokensPerS });
      addRow(`prefill ${len} tokens`, stats.prefillTokensPerS);
    }
    const decode = [];
    for (const ctx of ctxLens) {
      status.textContent = `Decoding ${decodeTokens} tokens at context ${ctx}…`;
      const stats = await generate(randomTokens(ctx, info.nVocab, ctx + 7), decodeTokens + 1);
      const gbps = (info.weightBytesPerToken * stats.decodeTokensPerS) / 1e9;
      decode.push({ ctx_len: ctx, tokens_per_s: stats.decodeTokensPerS, effective_gb_per_s: gbps });
      addRow(`decode at context ${ctx}`, stats.decodeTokensPerS, gbps);
    }
    // The same decoding (same prompts) held to the schema: the cost of structured output.
    const constrained = [];
    for (const [i, ctx] of (schema ? ctxLens : []).entries()) {
      status.textContent = `Decoding ${decodeTokens} tokens at context ${ctx} under the schema…`;
      const stats = await generate(randomTokens(ctx, info.nVocab, ctx + 7), decodeTokens + 1, { type: 'json_schema', schema });
      const free = decode[i].tokens_per_s;
      constrained.push({ ctx_len: ctx, tokens_per_s: stats.decodeTokensPerS, free_tokens_per_s: free, ratio: stats.decodeTokensPerS / free, tokens: stats.generatedTokens });
      addRow(`decode at context ${ctx} under the schema (${(stats.decodeTokensPerS / free).toFixed(2)}x)`, stats.decodeTokensPerS);
    }
    report = {
      adapter: { name: adapter.name, backend: adapter.backend },
      model,
      load_s: loadS,
      raw_load_s: null,
      // Time spent waiting for the model's bytes (IndexedDB reads and their checks) and the
      // rest of the load (worker and GPU start, parsing, repacking, uploads, pipelines); of
      // that rest, the waits once every weight was queued (pipelines still compiling, the
      // GPU's last writes); and the stored chunks read back (each once).
      load_profile: {
        read_s: engine.loadProfile.readS,
        other_s: loadS - engine.loadProfile.readS,
        compile_wait_s: engine.loadProfile.compileWaitS,
        gpu_wait_s: engine.loadProfile.gpuWaitS,
        stored_chunks: engine.loadProfile.storedChunks,
        stored_chunk_reads: engine.loadProfile.storedChunkReads,
      },
      first_load: firstLoad,
      weight_bytes_per_token: info.weightBytesPerToken,
      peak_gpu_bytes: (await engine.stats()).peakGpuBytes,
      planned_gpu_bytes: info.gpuBytesNeeded,
      prefill,
      decode,
    };
    if (schema) report.constrained = constrained;
  } finally {
    await engine.unload();
  }
  // Once the engine is gone, so the GPU never holds the model twice.
  status.textContent = 'Reading the model back from IndexedDB into the GPU, nothing else…';
  report.raw_load_s = await rawLoad(model);
  result.textContent = JSON.stringify(report);
  status.textContent = `Done on ${report.adapter.name || 'this GPU'} (${report.adapter.backend}).`;
  return report;
}

/**
 * The floor under load_s: the cached model's chunks read back from IndexedDB and written into
 * GPU buffers of their own, nothing else (no checks, parsing, repacking or pipelines), on a
 * device of this page's.
 */
async function rawLoad(model) {
  const device = await (await navigator.gpu.requestAdapter()).requestDevice();
  const started = performance.now();
  const buffers = [];
  for (const url of modelPartUrls(resolveModelUrl(model))) {
    const chunks = (await getManifest(url)).digests.length;
    for (let index = 0; index < chunks; index++) {
      const data = await readStoredChunk(url, index);
      const buffer = device.createBuffer({ size: Math.ceil(data.byteLength / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buffer, 0, data, 0, data.byteLength & ~3);
      buffers.push(buffer);
    }
  }
  await device.queue.onSubmittedWorkDone();
  const seconds = (performance.now() - started) / 1000;
  device.destroy();
  return seconds;
}

async function fetchSchema(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`the JSON schema at ${url}: HTTP ${response.status}`);
  return response.json();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  start();
});

async function start() {
  const data = new FormData(form);
  const run1 = form.querySelector('#run');
  run1.disabled = true;
  document.body.dataset.state = 'running';
  try {
    await run({
      model: String(data.get('model')).trim(),
      promptLens: lengths(String(data.get('prompt-lens'))),
      ctxLens: lengths(String(data.get('ctx-lens'))),
      decodeTokens: Math.max(2, Number(data.get('decode-tokens')) || 32),
      chunkSize: params.has('chunk-size') ? Number(params.get('chunk-size')) : undefined,
      kernels: params.get('kernels') ?? undefined,
      jsonSchema: String(data.get('json-schema') ?? '').trim(),
    });
    document.body.dataset.state = 'done';
  } catch (e) {
    status.textContent = `Failed: ${e.message}`;
    result.textContent = JSON.stringify({ error: e.message, code: e.code ?? null });
    document.body.dataset.state = 'failed';
  } finally {
    run1.disabled = false;
  }
}

if (params.get('run') === '1') start();
