// Hearth: a private LLM engine in the browser, on WebGPU. This module is the public API; the
// engine itself runs in a module worker (worker.js), so the page never blocks.
//
//   import { Engine } from './hearth.js';
//   const engine = await Engine.load('hf://owner/repo/Phi-4-mini-instruct-Q4_K_M.gguf', { onProgress: console.log });
//   for await (const chunk of await engine.chat.completions.create({ messages, stream: true }))
//     output.textContent += chunk.choices[0].delta.content ?? '';
//
// Nothing is fetched at import time; the worker fetches its wasm relative to this file.

import { HearthError, listModels, deleteModel, storageEstimate, requestPersistentStorage, getManifest } from './store.js';

export { HearthError };

const abortError = () => new DOMException('The operation was aborted.', 'AbortError');

/** `hf://owner/repo/path/file.gguf` (optionally `hf://owner/repo@revision/…`) → its download URL. */
export function resolveModelUrl(source) {
  const hf = /^hf:\/\/([^/]+)\/([^/@]+)(?:@([^/]+))?\/(.+)$/.exec(source);
  if (hf) {
    const [, owner, repo, revision, path] = hf;
    return `https://huggingface.co/${owner}/${repo}/resolve/${encodeURIComponent(revision ?? 'main')}/${path.split('/').map(encodeURIComponent).join('/')}`;
  }
  let url;
  try {
    url = new URL(source, globalThis.location?.href);
  } catch {
    throw new HearthError(`'${source}' is not a model address; give an http(s) URL or hf://owner/repo/file.gguf`, 'bad-url');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HearthError(`'${source}' is not a model address; give an http(s) URL or hf://owner/repo/file.gguf`, 'bad-url');
  }
  return url.href;
}

/** Every part's URL for a split model (`…-00001-of-00003.gguf`), else just the URL. */
export function modelPartUrls(url) {
  const m = /^(.*)-(\d{5})-of-(\d{5})\.gguf(\?.*)?$/.exec(url);
  if (!m) return [url];
  const count = Number(m[3]);
  return Array.from({ length: count }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, '0')}-of-${m[3]}.gguf${m[4] ?? ''}`);
}

function describeSource(source) {
  if (typeof Blob !== 'undefined' && source instanceof Blob) return { kind: 'files', files: [source] };
  if (Array.isArray(source) && source.length && source.every((s) => s instanceof Blob)) {
    // Parts of a split model picked together: order them by name.
    return { kind: 'files', files: [...source].sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '')) };
  }
  if (typeof source === 'string' || source instanceof URL) return { kind: 'url', urls: modelPartUrls(resolveModelUrl(String(source))) };
  throw new HearthError('Engine.load needs a model URL, an hf:// address, or a File/Blob (or the Files of a split model)', 'bad-source');
}

/** A push-driven async iterator: the worker's events in, `for await` out. */
class Channel {
  constructor() { this.items = []; this.waiters = []; this.closed = false; this.error = null; }
  push(item) { const w = this.waiters.shift(); if (w) w.resolve({ value: item, done: false }); else this.items.push(item); }
  close(error = null) {
    this.closed = true; this.error = error;
    for (const w of this.waiters.splice(0)) (error ? w.reject(error) : w.resolve({ value: undefined, done: true }));
  }
  next() {
    if (this.items.length) return Promise.resolve({ value: this.items.shift(), done: false });
    if (this.closed) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  [Symbol.asyncIterator]() { return this; }
}

class Rpc {
  /** `worker`: a Worker, or a SharedWorker (spoken to through its port). */
  constructor(worker) {
    this.worker = worker;
    this.port = worker.port ?? worker;
    this.nextId = 1;
    this.pending = new Map();
    this.onDeviceLost = null;
    this.lost = null;
    this.replaced = null;
    /** Releases the Web Lock this engine holds (`shared` without SharedWorker), if any. */
    this.releaseLock = null;
    this.port.onmessage = (e) => this.receive(e.data);
    worker.port?.start();
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.failAll(new HearthError(`the Hearth worker failed: ${e.message ?? 'it could not start (is hearth_wasm.js served next to hearth.js?)'}`, 'worker'));
    };
  }

  call(op, args = {}, { signal, onEvent } = {}) {
    if (this.lost) return Promise.reject(new HearthError(`the GPU device was lost (${this.lost}); load the model into a new engine`, 'device-lost'));
    if (this.replaced && op !== 'unload') return Promise.reject(new HearthError(`${this.replaced.message}; load the model again`, this.replaced.code));
    if (!this.worker) return Promise.reject(new HearthError('this engine was unloaded; load a model into a new engine', 'unloaded'));
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.port?.postMessage({ op: 'abort', target: id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve, reject, onEvent, cleanup: () => signal?.removeEventListener('abort', onAbort) });
      this.port.postMessage({ id, op, ...args });
    });
  }

  receive(msg) {
    if (msg.type === 'device-lost') {
      this.lost = msg.message;
      this.onDeviceLost?.(msg.message);
      return;
    }
    if (msg.type === 'model-replaced') {
      this.replaced = { message: msg.message, code: 'model-replaced' };
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'event') { p.onEvent?.(msg.event); return; }
    this.pending.delete(msg.id);
    p.cleanup();
    if (msg.type === 'result') p.resolve(msg.value);
    else p.reject(msg.error.name === 'AbortError' ? abortError() : new HearthError(msg.error.message, msg.error.code));
  }

  failAll(error) {
    for (const p of this.pending.values()) { p.cleanup(); p.reject(error); }
    this.pending.clear();
  }

  /** Stops a dedicated worker; leaves a shared one to the other pages. */
  terminate() {
    this.failAll(new HearthError('the engine was unloaded', 'unloaded'));
    if (this.worker?.port) this.worker.port.close();
    else this.worker?.terminate();
    this.worker = null;
    this.port = null;
    this.releaseLock?.();
    this.releaseLock = null;
  }

  /** Another tab took the engine's Web Lock: this engine stops, its GPU memory freed with its
   *  worker, and every call fails with code 'taken-over' (the page may load again). */
  takenOver() {
    const message = 'another tab of this page took over the engine';
    this.replaced = { message, code: 'taken-over' };
    this.failAll(new HearthError(`${message}; load the model again`, 'taken-over'));
    this.releaseLock = null;
    this.worker?.terminate();
    this.worker = null;
    this.port = null;
    this.onTakenOver?.();
  }
}

/**
 * One engine per browser where there is no SharedWorker (Chrome on Android): an exclusive Web
 * Lock, named after the hosts the engine may download from, held for as long as the engine
 * lives. A second page waits for it (`onWaiting` says so) until the first unloads or closes,
 * or with `takeOver` takes it: the first page's engine then stops. Resolves to a function that
 * releases the lock; `onLost` runs if another page takes it.
 */
function acquireEngineLock(name, { takeOver, signal, onWaiting, onLost }) {
  return new Promise((resolve, reject) => {
    let held = false;
    const hold = (lock) => {
      if (!lock) return null; // `ifAvailable`, and another page holds the engine
      held = true;
      return new Promise((release) => resolve(release));
    };
    // A request settles once its lock is released: by `release`, or (rejected) when another
    // page steals it. Resolves to whether the lock was granted.
    const request = (options) => navigator.locks.request(name, options, hold).then(() => held, (e) => {
      if (held) onLost();
      else reject(e?.name === 'AbortError' ? abortError() : new HearthError(`the engine lock failed: ${e?.message ?? e}`, 'worker'));
      return true;
    });
    if (takeOver) {
      request({ steal: true });
      return;
    }
    request({ ifAvailable: true }).then((granted) => {
      if (granted) return;
      onWaiting?.();
      request({ signal });
    });
  });
}

const RESPONSE_FORMATS = ['json_schema', 'json_object', 'regex', 'grammar', 'text'];
/** Deeper schemas would overflow the worker's stack while they are read; the engine says the same. */
const MAX_SCHEMA_DEPTH = 100;

/** How deeply a JSON value nests (a scalar 0, `{}` or `[]` 1), counted without recursion. */
function nestingDepth(value) {
  let deepest = 0;
  const open = [[value, 0]];
  while (open.length) {
    const [v, depth] = open.pop();
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > MAX_SCHEMA_DEPTH) break;
    for (const child of Object.values(v)) open.push([child, depth + 1]);
  }
  return deepest;
}

/** A chat message in the engine's terms: text content, and OpenAI's tool fields either way. */
function chatMessage(m) {
  const content = typeof m.content === 'string' ? m.content : m.content == null ? null : m.content.map((p) => p.text ?? '').join('');
  return { role: m.role, content, toolCalls: m.toolCalls ?? m.tool_calls, toolCallId: m.toolCallId ?? m.tool_call_id };
}

/** Generation options in the engine's own (camelCase) terms. */
function generateRequest(o) {
  const request = {};
  for (const key of ['prompt', 'tokens', 'messages', 'maxTokens', 'temperature', 'topK', 'topP', 'minP', 'repeatPenalty', 'presencePenalty', 'frequencyPenalty', 'penaltyLastN', 'logitBias', 'seed', 'stop', 'ignoreEos', 'responseFormat', 'tools', 'toolChoice']) {
    if (o[key] !== undefined && o[key] !== null) request[key] = o[key];
  }
  if (typeof request.stop === 'string') request.stop = [request.stop];
  if (request.messages) request.messages = request.messages.map(chatMessage);
  const format = request.responseFormat;
  if (format !== undefined && !RESPONSE_FORMATS.includes(format?.type)) {
    throw new HearthError(`responseFormat.type must be one of ${RESPONSE_FORMATS.join(', ')}`, 'bad-request');
  }
  for (const [what, value] of [['responseFormat.schema', format?.schema], ['tools', request.tools]]) {
    if (nestingDepth(value) > MAX_SCHEMA_DEPTH) {
      throw new HearthError(`${what} nests deeper than ${MAX_SCHEMA_DEPTH} levels`, 'bad-request');
    }
  }
  return request;
}

/** OpenAI's `response_format` as the engine's `responseFormat`. */
function responseFormat(format) {
  if (format == null || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.type === 'json_schema') {
    const schema = format.json_schema?.schema;
    if (schema === undefined) throw new HearthError('response_format json_schema needs json_schema.schema', 'bad-request');
    return { type: 'json_schema', schema };
  }
  throw new HearthError(`response_format.type must be text, json_object or json_schema, not '${format.type}'`, 'bad-request');
}

let completionCount = 0;

/**
 * A worker under this page's Content-Security-Policy. A worker loaded from its own URL obeys
 * only the headers of that response, so the page's policy would not govern its downloads; a
 * worker made from a blob: URL inherits the page's policy, and here it just imports the real
 * one. The policy must allow `worker-src blob:`.
 */
function policyBoundWorker(workerUrl) {
  const href = new URL(workerUrl, location.href).href;
  const blob = new Blob([`import ${JSON.stringify(href)};\n`], { type: 'text/javascript' });
  const url = URL.createObjectURL(blob);
  try {
    return new Worker(url, { type: 'module', name: 'hearth' });
  } finally {
    // The worker has fetched its script by the time it runs; the URL can go once it is queued.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

export class Engine {
  constructor(rpc, loaded, options) {
    this.rpc = rpc;
    /** What was loaded: architecture, sizes, context length, GPU memory planned. */
    this.info = loaded.info;
    /** The GPU adapter the engine runs on, with its limits. */
    this.adapter = loaded.adapter;
    /** Bytes this load fetched from the network (0 when everything came from the cache). */
    this.networkBytes = loaded.networkBytes;
    /** Where the load's time went, in seconds: `engineS` (starting wasm and the GPU device),
     *  `downloadS` (until the last missing byte was stored; the upload runs beside it),
     *  `readS` (waiting for the model's bytes: storage, checks, chunks still downloading),
     *  `uploadS` (the rest: parsing, repacking, writing to the GPU, compiling pipelines), and
     *  of that, `compileWaitS` and `gpuWaitS` (waiting, once every weight was queued, for
     *  pipelines still compiling and for the GPU's last writes). `storedChunks` and
     *  `storedChunkReads`: the cache's chunks and how many times they were read back. */
    this.loadProfile = loaded.loadProfile;
    /** Whether this engine is the worker shared by this origin's pages (`shared: true` where
     *  the browser has SharedWorker), and whether the model was on the GPU already, loaded by
     *  another page (then nothing was read or uploaded). */
    this.shared = !!rpc.worker.port;
    /** How this engine is shared: 'worker' (one SharedWorker for every page), 'lock' (no
     *  SharedWorker here: this page holds the one engine, other pages wait for it), or 'none'. */
    this.sharing = rpc.worker.port ? 'worker' : rpc.releaseLock ? 'lock' : 'none';
    this.reused = !!loaded.reused;
    this.onDeviceLost = options.onDeviceLost ?? null;
    rpc.onDeviceLost = (message) => this.onDeviceLost?.(new HearthError(`the GPU device was lost (${message}); load the model into a new engine`, 'device-lost'));
    rpc.onTakenOver = () => options.onTakenOver?.();
    const engine = this;
    this.chat = { completions: { create: (request) => engine.#createCompletion(request) } };
  }

  /**
   * Loads a GGUF model: a URL, `hf://owner/repo/file.gguf`, a split model's first part, or a
   * File/Blob. URLs are cached in IndexedDB (chunked, verified, resumable); a second load
   * makes no network request. `onProgress({ phase, loaded, total, bytesPerSecond })` reports
   * the phases 'download' (the upload to the GPU runs beside it, each chunk as it arrives),
   * 'upload' (what is left of it, or all of it from the cache) and, rarely, 'verify' (chunks
   * the upload did not read, checked before the download counts as complete).
   */
  static async load(source, options = {}) {
    const described = describeSource(source);
    if (options.kernels !== undefined && !['auto', 'gpu', 'cpu'].includes(options.kernels)) {
      throw new HearthError(`kernels: '${options.kernels}' is not one of 'auto', 'gpu', 'cpu'`, 'bad-request');
    }
    if (options.shared && options.inheritCsp) {
      throw new HearthError('shared and inheritCsp cannot go together: a worker shared by several pages cannot live under one page\'s policy', 'bad-request');
    }
    // Without SharedWorker, `shared` keeps one engine per browser with a Web Lock instead.
    const lockName = `hearth-engine ${JSON.stringify(options.connectSrc ?? null)}`;
    const useLock = options.shared && typeof SharedWorker === 'undefined' && typeof navigator !== 'undefined' && !!navigator.locks;
    let rpcForLock = null;
    const releaseLock = useLock ? await acquireEngineLock(lockName, {
      takeOver: !!options.takeOver,
      signal: options.signal,
      onWaiting: options.onWaiting,
      onLost: () => rpcForLock?.takenOver(),
    }) : null;
    let worker;
    try {
      // Written out literally so that bundlers (Vite, webpack, Parcel) recognise the worker
      // and bundle it with its wasm. Shared: one worker for every page of this origin that
      // asks for it (where the browser has no SharedWorker, a page gets its own).
      // Pages with different `connectSrc` lists never share a worker.
      const shared = options.shared && typeof SharedWorker !== 'undefined';
      const name = `hearth-shared ${JSON.stringify(options.connectSrc ?? null)}`;
      if (shared && options.workerUrl) worker = new SharedWorker(options.workerUrl, { type: 'module', name });
      else if (shared) worker = new SharedWorker(new URL('./worker.js', import.meta.url), { type: 'module', name });
      else if (options.inheritCsp) worker = policyBoundWorker(options.workerUrl ?? import.meta.url.replace(/[^/]*$/, 'worker.js'));
      else if (options.workerUrl) worker = new Worker(options.workerUrl, { type: 'module', name: 'hearth' });
      else worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'hearth' });
    } catch (e) {
      releaseLock?.();
      throw new HearthError(`cannot start the Hearth worker (${e?.message ?? e}); module workers need a recent browser`, 'worker');
    }
    const rpc = new Rpc(worker);
    rpc.releaseLock = releaseLock;
    rpcForLock = rpc;
    try {
      const loaded = await rpc.call('load', {
        source: described,
        options: { chunkSize: options.chunkSize, contextLength: options.contextLength, gpuMemoryBytes: options.gpuMemoryBytes, kernels: options.kernels, connectSrc: options.connectSrc },
      }, {
        signal: options.signal,
        onEvent: (event) => options.onProgress?.({ phase: event.phase, loaded: event.loaded, total: event.total, bytesPerSecond: event.bytesPerSecond }),
      });
      return new Engine(rpc, loaded, options);
    } catch (e) {
      rpc.terminate();
      throw e;
    }
  }

  /**
   * Generates a continuation. Give `prompt` (text; control tokens recognised), `tokens`, or
   * `messages` (rendered with the model's chat template). Resolves to
   * `{ text, tokens, finishReason, stats }`; `onToken({ text, token })` sees each piece.
   * The KV cache keeps the conversation: a follow-up that extends it skips its prefill.
   */
  async generate(options = {}) {
    const request = generateRequest(options);
    return this.rpc.call('generate', { request }, {
      signal: options.signal,
      onEvent: (event) => options.onToken?.({ text: event.text, token: event.token }),
    });
  }

  /**
   * Like `generate`, as an async iterator of `{ text, token }`; `.result` resolves to what
   * `generate` would. Breaking out of the loop stops generation.
   */
  generateStream(options = {}) {
    const channel = new Channel();
    const controller = new AbortController();
    options.signal?.addEventListener('abort', () => controller.abort(), { once: true });
    const result = this.generate({ ...options, signal: controller.signal, onToken: (piece) => channel.push(piece) });
    result.then(() => channel.close(), (e) => channel.close(e));
    return {
      result,
      next: () => channel.next(),
      return: async () => { controller.abort(); await result.catch(() => {}); return { value: undefined, done: true }; },
      [Symbol.asyncIterator]() { return this; },
    };
  }

  /** OpenAI-style chat completion; `stream: true` gives an async iterator of chunks. */
  async #createCompletion(request) {
    const { messages, stream = false, max_tokens, max_completion_tokens, temperature, top_p, seed, stop, frequency_penalty, presence_penalty, signal } = request;
    if (!Array.isArray(messages) || messages.length === 0) throw new HearthError('chat.completions.create needs a non-empty messages array', 'bad-request');
    const options = {
      messages,
      maxTokens: max_completion_tokens ?? max_tokens ?? this.info.contextLength,
      temperature, topP: top_p, seed, stop, frequencyPenalty: frequency_penalty, presencePenalty: presence_penalty,
      topK: request.top_k, minP: request.min_p, repeatPenalty: request.repetition_penalty, signal,
      responseFormat: responseFormat(request.response_format),
      tools: request.tools?.length ? request.tools : undefined,
      toolChoice: request.tools?.length ? request.tool_choice : undefined,
    };
    const id = `chatcmpl-hearth-${Date.now().toString(36)}-${completionCount++}`;
    const created = Math.floor(Date.now() / 1000);
    const model = this.info.name ?? this.info.architecture;
    const finish = (r) => (r === 'context_full' ? 'length' : r);
    const usage = (g) => ({
      prompt_tokens: g.stats?.promptTokens ?? 0,
      completion_tokens: g.tokens.length,
      total_tokens: (g.stats?.promptTokens ?? 0) + g.tokens.length,
      prompt_tokens_details: { cached_tokens: g.stats?.reusedTokens ?? 0 },
    });
    const message = (g) => (g.toolCalls ? { role: 'assistant', content: g.text || null, tool_calls: g.toolCalls } : { role: 'assistant', content: g.text });
    if (!stream) {
      const g = await this.generate(options);
      return { id, object: 'chat.completion', created, model, choices: [{ index: 0, message: message(g), finish_reason: finish(g.finishReason) }], usage: usage(g), hearth: g.stats };
    }
    const pieces = this.generateStream(options);
    const chunk = (delta, finish_reason = null, extra = {}) => ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason }], ...extra });
    async function* chunks() {
      yield chunk({ role: 'assistant', content: '' });
      for await (const piece of pieces) {
        if (piece.text) yield chunk({ content: piece.text });
      }
      const g = await pieces.result;
      // Calls come whole, once the reply is done: one delta each, in OpenAI's shape.
      for (const [index, call] of (g.toolCalls ?? []).entries()) yield chunk({ tool_calls: [{ index, ...call }] });
      yield chunk({}, finish(g.finishReason), { usage: usage(g), hearth: g.stats });
    }
    const iterator = chunks();
    const originalReturn = iterator.return.bind(iterator);
    iterator.return = async (v) => { await pieces.return(); return originalReturn(v); };
    return iterator;
  }

  /** Token ids of `text` (control tokens such as `<|user|>` recognised unless `special: false`). */
  tokenize(text, { special = true } = {}) { return this.rpc.call('tokenize', { text, special }); }
  detokenize(tokens) { return this.rpc.call('detokenize', { tokens: Array.from(tokens) }); }
  /** The prompt text the model's chat template makes of `messages`. */
  applyChatTemplate(messages, { addGenerationPrompt = true } = {}) { return this.rpc.call('applyChatTemplate', { messages, addGenerationPrompt }); }
  /** Forgets the cached conversation. */
  resetChat() { return this.rpc.call('reset'); }
  /** Memory figures: wasm linear memory, the weights on the GPU, all the GPU memory the engine
   * holds now and its peak since the model began to load. */
  stats() { return this.rpc.call('stats'); }

  /** Frees the GPU memory and stops the worker (shared: once no other page uses the model).
   *  The engine cannot be used afterwards. */
  async unload() {
    if (!this.rpc.worker) return;
    await this.rpc.call('unload').catch(() => {});
    this.rpc.terminate();
  }
}

/** The model cache in IndexedDB. */
export const cache = {
  /** Cached models: `{ url, size, storedBytes, complete, chunks, storedChunks, updatedAt }`. */
  list: listModels,
  /** Whether a model (URL or hf:// address) is fully cached. */
  async has(source) {
    const urls = modelPartUrls(resolveModelUrl(String(source)));
    const manifests = await Promise.all(urls.map(getManifest));
    return manifests.every((m) => m?.complete);
  },
  /** Deletes a cached model (all parts of a split model). */
  async delete(source) {
    for (const url of modelPartUrls(resolveModelUrl(String(source)))) await deleteModel(url);
  },
  /** `{ usage, quota, persisted }` of this origin's storage, in bytes. */
  estimate: storageEstimate,
  /** Asks the browser not to evict the cache under storage pressure; resolves to whether it agreed. */
  persist: requestPersistentStorage,
};

/** Whether this browser exposes WebGPU at all (a GPU may still be missing). */
export function hasWebGPU() {
  return typeof navigator !== 'undefined' && !!navigator.gpu;
}
