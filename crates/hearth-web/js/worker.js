// Hearth's worker: owns the wasm engine and the GPU device, downloads into the cache, and
// answers requests one at a time (so the page never blocks and two generations never
// interleave). It runs as a dedicated worker (one page's engine) or as a SharedWorker (one
// engine for every page of an origin that asks for it: `Engine.load(src, { shared: true })`),
// where each connected page is a client with its own port and requests from all of them
// are answered in the order they came. Protocol, page → worker: { id, op, ...args } and
// { op: 'abort', target: id }; worker → page: { id, type: 'event' | 'result' | 'error', ... },
// { type: 'device-lost', message } and, shared, { type: 'model-replaced', message }.

import init, { WasmEngine, wasmMemoryBytes } from './hearth_wasm.js';
import { BlobFile, CachedFile, Concatenation, HearthError, DEFAULT_CHUNK_BYTES, setConnectPolicy } from './store.js';

let wasmReady = null;
let engine = null;
let queue = Promise.resolve();
const controllers = new Map();

const abortError = () => new DOMException('The operation was aborted.', 'AbortError');

/** A page connected to this worker: where its answers go. */
const dedicatedClient = { id: 0, port: self };
/** Shared: the pages using the loaded model (those that loaded it and did not unload). */
const clients = new Set();
let nextClientId = 1;
/** Shared: what the loaded model was loaded from (URLs and options), and that load's answer,
 *  so that a page asking for the same model gets it without a second upload. */
let loadedKey = null;
let loadedResult = null;

function post(client, message) {
  client.port.postMessage(message);
}

function broadcast(message, except = null) {
  for (const client of clients) if (client !== except) post(client, message);
}

/**
 * The engine, created by the first call. `kernels` (from the load that creates it): 'auto'
 * picks the CPU-emulation kernel set where the adapter is a software one, 'gpu' or 'cpu'
 * force a set.
 */
async function getEngine(kernels = 'auto') {
  wasmReady ??= init();
  await wasmReady;
  if (!engine) {
    if (!self.navigator?.gpu) {
      throw new HearthError('this browser does not offer WebGPU. Use a recent Chrome, Edge or Safari (or Firefox with WebGPU enabled) on a device with a supported GPU', 'no-webgpu');
    }
    // wgpu cannot see whether the browser's adapter is a CPU emulation; WebGPU tells us.
    const adapter = await self.navigator.gpu.requestAdapter().catch(() => null);
    const info = adapter?.info ?? {};
    const software = !!(info.isFallbackAdapter || adapter?.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(`${info.architecture} ${info.description} ${info.vendor}`));
    const cpuAdapter = kernels === 'auto' ? software : kernels === 'cpu';
    try {
      engine = await WasmEngine.create(cpuAdapter);
    } catch (e) {
      throw new HearthError(`WebGPU is present but no GPU could be opened: ${e?.message ?? e}`, 'no-webgpu');
    }
  }
  return engine;
}

/** Progress in phases, with speed over the last couple of seconds; throttled. */
class Progress {
  constructor(client, id) {
    this.client = client;
    this.id = id;
    this.phase = null;
    this.lastPost = 0;
  }

  start(phase, total, loaded = 0) {
    this.phase = phase;
    this.total = total;
    this.loaded = loaded;
    this.samples = [[performance.now(), loaded]];
    this.emit(true);
  }

  add(n) {
    this.set(this.loaded + n);
  }

  set(loaded) {
    this.loaded = loaded;
    const now = performance.now();
    this.samples.push([now, loaded]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 2000) this.samples.shift();
    this.emit(loaded >= this.total);
  }

  emit(force) {
    const now = performance.now();
    if (!force && now - this.lastPost < 100) return;
    this.lastPost = now;
    const [t0, b0] = this.samples[0];
    const seconds = (now - t0) / 1000;
    const bytesPerSecond = seconds > 0.05 ? (this.loaded - b0) / seconds : 0;
    post(this.client, { id: this.id, type: 'event', event: { kind: 'progress', phase: this.phase, loaded: this.loaded, total: this.total, bytesPerSecond, wasmMemoryBytes: wasmMemoryBytes() } });
  }
}

/** Runs a wasm call that reads the model through `read`; a failed read is rethrown as itself
 *  (with its code: network, quota, abort…), not as the message wasm wrapped it in. */
async function withReader(whole, signal, call, timing = { readMs: 0 }) {
  let readError = null;
  const read = (offset, length) => {
    if (signal.aborted) readError = abortError();
    const started = performance.now();
    const result = readError ? Promise.reject(readError) : whole.read(offset, length);
    return result.then(
      (bytes) => { timing.readMs += performance.now() - started; return bytes; },
      (e) => { readError ??= e; throw e; },
    );
  };
  try {
    return await call(read);
  } catch (e) {
    throw readError ?? e;
  }
}

/** What identifies a load for sharing: the URLs and the options; files are never shared. */
function loadKey(msg) {
  if (msg.source.kind !== 'url') return null;
  const o = msg.options ?? {};
  return JSON.stringify([msg.source.urls, o.contextLength ?? null, o.gpuMemoryBytes ?? null, o.kernels ?? 'auto']);
}

async function load(msg, signal, client) {
  setConnectPolicy(msg.options?.connectSrc);
  const key = loadKey(msg);
  if (client !== dedicatedClient) {
    if (key !== null && key === loadedKey && engine) {
      // The model is on the GPU already, for another page: share it.
      clients.add(client);
      const nothing = Object.fromEntries(Object.keys(loadedResult.loadProfile).map((k) => [k, 0]));
      const loadProfile = { ...nothing, storedChunks: loadedResult.loadProfile.storedChunks };
      return { ...loadedResult, networkBytes: 0, loadProfile, reused: true };
    }
    // Another model replaces the one the other pages use: they are told.
    broadcast({ type: 'model-replaced', message: 'another page loaded a different model into the shared engine' }, client);
    clients.clear();
    loadedKey = null;
    loadedResult = null;
  }
  const result = await loadModel(msg, signal, client);
  if (client !== dedicatedClient) {
    clients.add(client);
    loadedKey = key;
    loadedResult = result;
  }
  return { ...result, reused: false };
}

async function loadModel(msg, signal, client) {
  const started = performance.now();
  const wasm = await getEngine(msg.options?.kernels);
  const engineReady = performance.now();
  const progress = new Progress(client, msg.id);
  const options = { contextLength: msg.options?.contextLength, gpuMemoryBytes: msg.options?.gpuMemoryBytes };
  // Stops a download running beside the upload when the load fails or is aborted.
  const downloadStop = new AbortController();
  const stopDownload = () => downloadStop.abort();
  signal.addEventListener('abort', stopDownload);
  let files = [];
  let whole;
  let networkBytes = 0;
  let downloading = null; // the download under way, which the upload follows chunk by chunk
  let downloadS = 0;
  const upload = { done: 0, total: 0 };
  if (msg.source.kind === 'url') {
    const chunkSize = msg.options?.chunkSize ?? DEFAULT_CHUNK_BYTES;
    files = msg.source.urls.map((url) => new CachedFile(url, {
      chunkSize,
      signal: downloadStop.signal,
      onDownload: (n) => {
        networkBytes += n;
        if (progress.phase === 'download') progress.add(n);
      },
    }));
    whole = new Concatenation(files);
    for (const f of files) {
      await f.open(); // no network when the part is cached whole
    }
    options.partLens = whole.partLens;
    if (files.some((f) => !f.complete)) {
      progress.start('download', whole.size, files.reduce((n, f) => n + f.storedBytes(), 0));
      if (files.every((f) => f.rangeSupported)) {
        // Reading the header fetches only the chunks it spans; a model that cannot run on
        // this device is refused here, before its weights are downloaded.
        await withReader(whole, signal, (read) => wasm.inspect(whole.size, read, options));
      }
      downloading = (async () => {
        for (const f of files) await f.download();
        downloadS = (performance.now() - engineReady) / 1000;
        // What is left of the upload once the last byte is in.
        progress.start('upload', upload.total, upload.done);
      })();
      downloading.catch(() => {}); // surfaces through the reads waiting on it, or below
    }
  } else {
    whole = new Concatenation(msg.source.files.map((file) => new BlobFile(file)));
    options.partLens = whole.partLens;
  }
  if (signal.aborted) throw abortError();
  if (!downloading) progress.start('upload', 0);
  const timing = { readMs: 0 };
  const uploadStarted = performance.now();
  let info;
  try {
    info = await withReader(whole, signal, (read) => wasm.load(whole.size, read, options, (done, total) => {
      Object.assign(upload, { done, total });
      if (progress.phase === 'upload') {
        progress.total = total;
        progress.set(done);
      }
    }), timing);
    if (downloading) {
      await downloading;
      // Chunks the upload did not read (padding, tensors the model does not use) are read
      // back and checked now; then the cache entry is complete.
      const unchecked = files.reduce((n, f) => n + f.uncheckedBytes(), 0);
      if (unchecked > 0) progress.start('verify', unchecked);
      for (const f of files) await f.verify((n) => progress.add(n));
    }
  } catch (e) {
    stopDownload();
    await downloading?.catch(() => {});
    throw e;
  } finally {
    signal.removeEventListener('abort', stopDownload);
  }
  const finished = performance.now();
  // Where a load's time went: starting the engine (wasm, GPU device); the download until its
  // last byte was stored, if any (the upload runs beside it); waiting for the model's bytes
  // (IndexedDB or file, their checks, and chunks still downloading); the rest of the upload
  // (parsing, repacking, writing to the GPU, compiling pipelines), with what the engine
  // waited for once every weight was queued: pipelines still compiling, the GPU's last
  // writes. And how often the stored chunks were read back: each once.
  const [, compileWaitS, gpuWaitS] = wasm.modelLoadProfile();
  const loadProfile = {
    engineS: (engineReady - started) / 1000,
    downloadS,
    readS: timing.readMs / 1000,
    uploadS: (finished - uploadStarted - timing.readMs) / 1000,
    compileWaitS,
    gpuWaitS,
    storedChunks: files.reduce((n, f) => n + f.chunkCount(), 0),
    storedChunkReads: files.reduce((n, f) => n + f.storedReads, 0),
  };
  return { info, adapter: wasm.adapter(), networkBytes, wasmMemoryBytes: wasmMemoryBytes(), loadProfile };
}

async function generate(msg, signal, client) {
  const wasm = await getEngine();
  if (signal.aborted) {
    return { text: '', tokens: [], finishReason: 'abort', stats: null };
  }
  return wasm.generate(msg.request, (text, token) => {
    if (signal.aborted) return false;
    post(client, { id: msg.id, type: 'event', event: { kind: 'token', text, token } });
    return true;
  });
}

const ops = {
  load,
  generate,
  async tokenize(msg) { return Array.from((await getEngine()).tokenize(msg.text, msg.special ?? true)); },
  async detokenize(msg) { return (await getEngine()).detokenize(Uint32Array.from(msg.tokens)); },
  async applyChatTemplate(msg) { return (await getEngine()).applyChatTemplate(msg.messages, msg.addGenerationPrompt ?? true); },
  async reset() { (await getEngine()).reset(); },
  /** Frees the model; shared, only once no other page uses it. */
  async unload(msg, signal, client) {
    if (client !== dedicatedClient) {
      clients.delete(client);
      if (clients.size > 0) return;
      loadedKey = null;
      loadedResult = null;
    }
    engine?.unload();
  },
  /** Testing aid: lose the GPU device as a driver reset would. */
  async loseDevice() { (await getEngine()).loseDeviceForTesting(); },
  async stats() {
    const [gpuBytes, peakGpuBytes] = engine?.gpuMemory() ?? [0, 0];
    return { wasmMemoryBytes: wasmMemoryBytes(), modelBytesOnGpu: engine?.modelBytesOnGpu() ?? 0, gpuBytes, peakGpuBytes };
  },
};

function describeError(e) {
  if (e?.name === 'AbortError') return { name: 'AbortError', message: e.message };
  return { name: 'HearthError', message: e?.message ?? String(e), code: e?.code ?? 'engine' };
}

/** Set when the GPU device is lost: this worker is done; the page makes a new engine. */
let deviceLost = null;

async function run(msg, client) {
  const key = `${client.id}:${msg.id}`;
  const controller = controllers.get(key);
  try {
    if (deviceLost) throw new HearthError(`the GPU device was lost (${deviceLost}); load the model into a new engine`, 'device-lost');
    const value = await ops[msg.op](msg, controller.signal, client);
    post(client, { id: msg.id, type: 'result', value });
  } catch (e) {
    // Report a lost device before the failed call's error, so the page knows why it failed.
    try {
      if (!deviceLost) engine?.checkDevice();
    } catch (lost) {
      if (/lost/i.test(lost?.message ?? '')) {
        deviceLost = lost.message;
        engine = null;
        post(client, { type: 'device-lost', message: lost.message });
        broadcast({ type: 'device-lost', message: lost.message }, client);
      }
    }
    // Errors from inside wasm lose their JS type; an aborted load surfaces as its message.
    const error = controller.signal.aborted && msg.op === 'load' ? abortError() : e;
    post(client, { id: msg.id, type: 'error', error: describeError(error) });
  } finally {
    controllers.delete(key);
  }
}

function receive(msg, client) {
  if (msg.op === 'abort') {
    controllers.get(`${client.id}:${msg.target}`)?.abort();
    return;
  }
  if (!ops[msg.op]) {
    post(client, { id: msg.id, type: 'error', error: { name: 'HearthError', message: `unknown operation '${msg.op}'`, code: 'protocol' } });
    return;
  }
  controllers.set(`${client.id}:${msg.id}`, new AbortController());
  // One queue for every page: requests are answered in the order they came.
  queue = queue.then(() => run(msg, client));
}

if (typeof SharedWorkerGlobalScope !== 'undefined' && self instanceof SharedWorkerGlobalScope) {
  self.onconnect = (event) => {
    const client = { id: nextClientId++, port: event.ports[0] };
    client.port.onmessage = (e) => receive(e.data, client);
    client.port.start();
  };
} else {
  self.onmessage = (event) => receive(event.data, dedicatedClient);
}
