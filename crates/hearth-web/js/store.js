// Hearth's model cache: GGUF files downloaded once, in fixed-size chunks, into IndexedDB.
//
// Layout (database "hearth-models"):
//   manifests  key: url  → { url, size, etag, lastModified, chunkSize, digests: [hex|null],
//                           complete, createdAt, updatedAt }
//   chunks     key: `${url}#${index}` → { url, index, data: ArrayBuffer, digest }
//
// A chunk is written together with its SHA-256; a model counts as cached (`complete`) only
// after every chunk was read back from IndexedDB and matched its digest. Reads at load time
// check each chunk's digest again, so a record damaged later is noticed and fetched anew.
// Works in a window and in a worker.

const DB_NAME = 'hearth-models';
const DB_VERSION = 1;
export const DEFAULT_CHUNK_BYTES = 32 * 1024 * 1024;
/** Chunks kept in memory while loading; bounds the JS heap at a few chunks. */
// Chunks a reader keeps: the one being read, the one before (a read may straddle) and the next,
// fetched and checked ahead while the engine works on this one.
const READ_CACHE_CHUNKS = 3;

export class HearthError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'HearthError';
    this.code = code;
  }
}

const abortError = () => new DOMException('The operation was aborted.', 'AbortError');

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? abortError());
    tx.onerror = () => reject(tx.error);
  });
}

let dbPromise = null;
function openDb() {
  if (typeof indexedDB === 'undefined') {
    return Promise.reject(new HearthError('this browser offers no IndexedDB, so models cannot be cached (private browsing can disable it); open a file from disk instead', 'no-storage'));
  }
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains('manifests')) db.createObjectStore('manifests', { keyPath: 'url' });
      if (!db.objectStoreNames.contains('chunks')) db.createObjectStore('chunks');
    };
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => { db.close(); dbPromise = null; };
      resolve(db);
    };
    req.onerror = () => { dbPromise = null; reject(new HearthError(`cannot open the model cache: ${req.error?.message}`, 'no-storage')); };
    req.onblocked = () => reject(new HearthError('the model cache is being upgraded by another tab; close other Hearth tabs and retry', 'no-storage'));
  });
  return dbPromise;
}

const chunkKey = (url, index) => `${url}#${index}`;
const chunkLength = (m, index) => Math.min(m.chunkSize, m.size - index * m.chunkSize);
/** Bytes of a manifest's chunks that are stored (or of the given chunk indices). */
const bytesOf = (m, indices = m.digests.flatMap((d, i) => (d ? [i] : []))) => indices.reduce((n, i) => n + chunkLength(m, i), 0);

function storageError(e, what) {
  if (e?.name === 'QuotaExceededError') {
    return new HearthError(`the browser's storage is full while ${what}; free space (delete cached models) or ask for persistent storage, then retry: the download resumes where it stopped`, 'quota');
  }
  return e instanceof HearthError ? e : new HearthError(`the model cache failed while ${what}: ${e?.message ?? e}`, 'storage');
}

export async function getManifest(url) {
  const db = await openDb();
  return request(db.transaction('manifests').objectStore('manifests').get(url));
}

async function putManifest(manifest) {
  const db = await openDb();
  const tx = db.transaction('manifests', 'readwrite');
  tx.objectStore('manifests').put({ ...manifest, updatedAt: Date.now() });
  try { await done(tx); } catch (e) { throw storageError(e, 'saving the download state'); }
}

async function putChunk(manifest, index, data, digest) {
  const db = await openDb();
  const tx = db.transaction(['chunks', 'manifests'], 'readwrite');
  tx.objectStore('chunks').put({ url: manifest.url, index, data, digest }, chunkKey(manifest.url, index));
  manifest.digests[index] = digest;
  tx.objectStore('manifests').put({ ...manifest, updatedAt: Date.now() });
  try { await done(tx); } catch (e) { manifest.digests[index] = null; throw storageError(e, `storing chunk ${index + 1} of ${manifest.digests.length}`); }
}

async function getChunk(url, index) {
  const db = await openDb();
  return request(db.transaction('chunks').objectStore('chunks').get(chunkKey(url, index)));
}

/** A stored chunk's bytes as IndexedDB gives them back, unchecked (bench.html's raw baseline). */
export async function readStoredChunk(url, index) {
  return (await getChunk(url, index))?.data;
}

/** Deletes a model's chunks and manifest. */
export async function deleteModel(url) {
  const db = await openDb();
  const tx = db.transaction(['chunks', 'manifests'], 'readwrite');
  tx.objectStore('chunks').delete(IDBKeyRange.bound(`${url}#`, `${url}#\uffff`));
  tx.objectStore('manifests').delete(url);
  await done(tx);
}

async function discardChunks(manifest) {
  const db = await openDb();
  const tx = db.transaction('chunks', 'readwrite');
  tx.objectStore('chunks').delete(IDBKeyRange.bound(`${manifest.url}#`, `${manifest.url}#\uffff`));
  await done(tx);
}

/** Cached models (complete or partial) with their sizes. */
export async function listModels() {
  const db = await openDb();
  const all = await request(db.transaction('manifests').objectStore('manifests').getAll());
  return all.map((m) => {
    const stored = m.digests.filter(Boolean).length;
    return { url: m.url, size: m.size, storedBytes: bytesOf(m), complete: !!m.complete, chunks: m.digests.length, storedChunks: stored, updatedAt: m.updatedAt };
  });
}

export async function storageEstimate() {
  const est = (await navigator.storage?.estimate?.()) ?? {};
  const persisted = (await navigator.storage?.persisted?.()) ?? false;
  return { usage: est.usage ?? null, quota: est.quota ?? null, persisted };
}

export async function requestPersistentStorage() {
  return (await navigator.storage?.persist?.()) ?? false;
}

export async function sha256(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------------------- network

function httpError(url, status, statusText) {
  const what = { 404: 'was not found', 401: 'needs a login', 403: 'is not accessible (forbidden)', 416: 'rejected the byte range requested', 429: 'is rate-limited; retry later' }[status];
  return new HearthError(`the model at ${url} ${what ?? `could not be fetched: the server answered HTTP ${status} ${statusText ?? ''}`.trim()}`, `http-${status}`);
}

function parseContentRange(header) {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

const validatorOf = (resp) => ({ etag: resp.headers.get('ETag'), lastModified: resp.headers.get('Last-Modified') });
const sameValidator = (m, v) => (m.etag ?? null) === (v.etag ?? null) && (m.lastModified ?? null) === (v.lastModified ?? null);

/** Reads a response body fully, failing clearly when the connection drops. */
async function readBody(resp, expected, signal, onBytes) {
  const out = new Uint8Array(expected);
  let at = 0;
  const reader = resp.body.getReader();
  try {
    for (;;) {
      if (signal?.aborted) throw abortError();
      const { done: end, value } = await reader.read();
      if (end) break;
      if (at + value.length > expected) throw new HearthError(`the server sent more bytes than the ${expected} requested`, 'bad-length');
      out.set(value, at);
      at += value.length;
      onBytes?.(value.length);
    }
  } catch (e) {
    if (e?.name === 'AbortError' || e instanceof HearthError) throw e;
    throw new HearthError(`the connection dropped during the download (${e?.message ?? e}); load again to resume`, 'network');
  } finally {
    reader.releaseLock?.();
  }
  if (at !== expected) throw new HearthError(`the connection ended after ${at} of ${expected} bytes; load again to resume`, 'network');
  return out.buffer;
}

// A fetch that the page's Content-Security-Policy refuses fails like any network error; the
// violation event, fired in the same context, is what tells the two apart.
const refusedByPolicy = [];
globalThis.addEventListener?.('securitypolicyviolation', (e) => {
  if (e.effectiveDirective === 'connect-src') refusedByPolicy.push(e.blockedURI);
});

// Origins downloads may reach, as CSP source expressions ('self', https://host,
// https://*.host, http://host:*), for a worker no page's policy governs (a SharedWorker);
// null: no list (the policy, if any, is the page's).
let connectPolicy = null;

export function setConnectPolicy(sources) {
  connectPolicy = sources ?? null;
}

function allowedByPolicy(url) {
  if (!connectPolicy) return true;
  const u = new URL(url);
  return connectPolicy.some((source) => {
    if (source === "'self'") return u.origin === self.location.origin;
    const m = /^(https?):\/\/(\*\.)?([^/:]+)(?::(\d+|\*))?$/.exec(source);
    if (!m || u.protocol !== `${m[1]}:`) return false;
    const hostOk = m[2] ? u.hostname.endsWith(`.${m[3]}`) : u.hostname === m[3];
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    const portOk = m[4] === '*' || (m[4] ?? (m[1] === 'https' ? '443' : '80')) === port;
    return hostOk && portOk;
  });
}

function refusedError(url) {
  return new HearthError(`this page's policy does not allow connections to ${new URL(url).origin}; the page must allow that host before a model can be downloaded from it`, 'blocked-by-policy');
}

async function fetchOrExplain(url, init) {
  if (!allowedByPolicy(url)) throw refusedError(url);
  try {
    const response = await fetch(url, init);
    // A redirect elsewhere (a CDN) must be on the list too.
    if (response.url && !allowedByPolicy(response.url)) {
      await response.body?.cancel();
      throw refusedError(response.url);
    }
    return response;
  } catch (e) {
    if (e instanceof HearthError) throw e;
    if (e?.name === 'AbortError') throw e;
    await new Promise((resolve) => setTimeout(resolve, 0)); // let a violation event arrive
    const origin = new URL(url).origin;
    if (refusedByPolicy.some((blocked) => blocked === url || blocked.startsWith(origin))) {
      throw new HearthError(`this page's Content-Security-Policy does not allow connections to ${origin}; the page must allow that host (connect-src) before a model can be downloaded from it`, 'blocked-by-policy');
    }
    throw new HearthError(`cannot reach ${url} (${e?.message ?? e}); check the address and your connection`, 'network');
  }
}

/** A model file in the cache, downloaded chunk by chunk with Range requests. */
export class CachedFile {
  constructor(url, { chunkSize = DEFAULT_CHUNK_BYTES, signal, onDownload } = {}) {
    this.url = url;
    this.chunkSize = chunkSize;
    this.signal = signal;
    this.onDownload = onDownload; // (bytes) => void, as network bytes arrive
    this.manifest = null;
    this.rangeSupported = true;
    this.verified = new Set();
    this.readCache = new Map(); // index → Promise<ArrayBuffer>, checked
    this.downloadedNow = [];
    this.storedReads = 0; // records `chunk` read back from IndexedDB
    this.arrivals = new Map(); // index → { promise, resolve, reject } while a download runs
    this.downloading = false;
    this.downloadError = null;
  }

  get size() { return this.manifest.size; }
  get complete() { return !!this.manifest?.complete; }

  chunkCount() { return Math.ceil(this.manifest.size / this.manifest.chunkSize); }
  chunkLength(i) { return chunkLength(this.manifest, i); }
  /** Bytes already in the cache. */
  storedBytes() { return bytesOf(this.manifest); }
  missingChunks() { return this.manifest.digests.flatMap((d, i) => (d ? [] : [i])); }

  /** Opens the cache entry; unless it is complete, asks the server for size and chunk 0. */
  async open() {
    const existing = await getManifest(this.url);
    if (existing?.complete) {
      this.manifest = existing;
      return;
    }
    const chunkSize = existing?.chunkSize ?? this.chunkSize;
    // Resuming with chunk 0 stored: one byte is enough to learn whether the file changed.
    const probeEnd = existing?.digests[0] ? 0 : chunkSize - 1;
    const resp = await fetchOrExplain(this.url, { headers: { Range: `bytes=0-${probeEnd}` }, signal: this.signal, cache: 'no-store' });
    this.rangeProbed = true;
    if (resp.status !== 206 && resp.status !== 200) throw httpError(this.url, resp.status, resp.statusText);
    const validator = validatorOf(resp);
    let size;
    if (resp.status === 206) {
      const range = parseContentRange(resp.headers.get('Content-Range'));
      if (!range || range.start !== 0 || range.total === null) throw new HearthError(`the server at ${this.url} answered a range request with an unusable Content-Range: ${resp.headers.get('Content-Range')}`, 'bad-range');
      size = range.total;
    } else {
      this.rangeSupported = false;
      size = Number(resp.headers.get('Content-Length'));
      if (!Number.isFinite(size) || size <= 0) throw new HearthError(`the server at ${this.url} supports neither range requests nor tells the file's length; Hearth cannot download it`, 'bad-length');
    }
    if (existing && (existing.size !== size || !sameValidator(existing, validator))) {
      // The file on the server changed since the partial download: its chunks are worthless.
      await discardChunks(existing);
      this.changed = true;
    }
    const keep = existing && !this.changed;
    this.manifest = keep ? existing : {
      url: this.url, size, etag: validator.etag, lastModified: validator.lastModified, chunkSize,
      digests: new Array(Math.ceil(size / chunkSize)).fill(null), complete: false, createdAt: Date.now(),
    };
    if (!keep) await putManifest(this.manifest);
    if (resp.status === 206) {
      if (this.manifest.digests[0] || probeEnd === 0) {
        await resp.body?.cancel();
      } else {
        await this.storeChunk(0, await readBody(resp, this.chunkLength(0), this.signal, this.onDownload));
      }
    } else {
      this.fullResponse = resp; // consumed by download(): the server sends the whole file
    }
  }

  async storeChunk(index, data) {
    await putChunk(this.manifest, index, data, await sha256(data));
    this.downloadedNow.push(index);
    this.arrivals.get(index)?.resolve();
    this.arrivals.delete(index);
  }

  /** Resolves once chunk `index` is stored by the download under way (at once if it is). */
  arrival(index) {
    if (this.manifest.digests[index]) return Promise.resolve();
    if (this.downloadError) return Promise.reject(this.downloadError);
    let waiter = this.arrivals.get(index);
    if (!waiter) {
      waiter = {};
      waiter.promise = new Promise((resolve, reject) => Object.assign(waiter, { resolve, reject }));
      this.arrivals.set(index, waiter);
    }
    return waiter.promise;
  }

  async fetchChunk(index) {
    if (!this.rangeSupported) throw new HearthError(`chunk ${index + 1} must be fetched again but the server does not support range requests; delete the model and download it again`, 'bad-range');
    const start = index * this.manifest.chunkSize;
    const end = start + this.chunkLength(index) - 1;
    const resp = await fetchOrExplain(this.url, { headers: { Range: `bytes=${start}-${end}` }, signal: this.signal, cache: 'no-store' });
    if (resp.status !== 206) {
      await resp.body?.cancel();
      if (resp.status === 200) throw new HearthError(`the server at ${this.url} stopped honouring range requests; retry later`, 'bad-range');
      throw httpError(this.url, resp.status, resp.statusText);
    }
    const range = parseContentRange(resp.headers.get('Content-Range'));
    if (!range || range.start !== start || range.end !== end) throw new HearthError(`the server answered bytes ${resp.headers.get('Content-Range')} to a request for bytes ${start}-${end}`, 'bad-range');
    if (range.total !== this.manifest.size || !sameValidator(this.manifest, validatorOf(resp))) {
      await resp.body?.cancel();
      await deleteModel(this.url);
      throw new HearthError(`the model at ${this.url} changed on the server during the download; load it again to download the new version`, 'changed');
    }
    await this.storeChunk(index, await readBody(resp, this.chunkLength(index), this.signal, this.onDownload));
  }

  /** Downloads every missing chunk (resuming a partial download). While it runs, `chunk`
   *  waits for a missing chunk to arrive instead of fetching it itself, so the engine can read
   *  the model as it comes in. */
  async download() {
    if (this.complete) return;
    this.downloading = true;
    try {
      await this.downloadMissing();
    } catch (e) {
      this.downloadError = e;
      for (const waiter of this.arrivals.values()) waiter.reject(e);
      this.arrivals.clear();
      throw e;
    } finally {
      this.downloading = false;
    }
  }

  async downloadMissing() {
    if (this.fullResponse) {
      await this.downloadWithoutRanges(this.fullResponse);
      this.fullResponse = null;
    } else {
      for (const index of this.missingChunks()) {
        if (this.signal?.aborted) throw abortError();
        await this.fetchChunk(index);
      }
    }
  }

  /** A server without Range support sends the whole file; cut it into chunks as it streams. */
  async downloadWithoutRanges(resp) {
    const reader = resp.body.getReader();
    let index = 0;
    let buffer = new Uint8Array(this.chunkLength(0));
    let filled = 0;
    let total = 0;
    try {
      for (;;) {
        if (this.signal?.aborted) throw abortError();
        const { done: end, value } = await reader.read();
        if (end) break;
        let at = 0;
        while (at < value.length) {
          if (index >= this.chunkCount()) throw new HearthError(`the server sent more than the ${this.manifest.size} bytes its Content-Length announced`, 'bad-length');
          const n = Math.min(value.length - at, buffer.length - filled);
          buffer.set(value.subarray(at, at + n), filled);
          filled += n; at += n; total += n;
          this.onDownload?.(n);
          if (filled === buffer.length) {
            if (!this.manifest.digests[index]) await this.storeChunk(index, buffer.buffer);
            index += 1;
            if (index < this.chunkCount()) { buffer = new Uint8Array(this.chunkLength(index)); filled = 0; }
          }
        }
      }
    } catch (e) {
      if (e?.name === 'AbortError' || e instanceof HearthError) throw e;
      throw new HearthError(`the connection dropped during the download (${e?.message ?? e}); load again to resume`, 'network');
    }
    if (total !== this.manifest.size) throw new HearthError(`the download ended after ${total} bytes but the server announced ${this.manifest.size}; load again to retry`, 'bad-length');
  }

  /** Reads back each chunk downloaded in this session that no read has checked yet, and
   *  checks it; then marks the file complete. */
  async verify(onChunk) {
    for (const index of this.downloadedNow) {
      if (this.verified.has(index)) continue;
      const record = await getChunk(this.url, index);
      if (!record || record.data.byteLength !== this.chunkLength(index) || (await sha256(record.data)) !== this.manifest.digests[index]) {
        this.manifest.digests[index] = null;
        await putManifest(this.manifest);
        throw new HearthError(`chunk ${index + 1} did not read back intact from the browser's storage; load again to fetch it anew`, 'corrupt');
      }
      this.verified.add(index);
      onChunk?.(this.chunkLength(index));
    }
    this.downloadedNow = [];
    if (this.missingChunks().length === 0 && !this.manifest.complete) {
      this.manifest.complete = true;
      await putManifest(this.manifest);
    }
  }

  /** Bytes downloaded in this session that no read has checked yet. */
  uncheckedBytes() {
    return this.downloadedNow.filter((i) => !this.verified.has(i)).reduce((n, i) => n + this.chunkLength(i), 0);
  }

  /** One chunk's bytes from the cache, checked against its digest the first time; a bad or
   *  missing record is fetched again from the server. The next chunk is read and checked
   *  meanwhile, so storage and hashing overlap the engine's work on this one. */
  chunk(index) {
    const data = this.cachedRead(index);
    const next = index + 1;
    // Read ahead what is stored or on its way; never fetch a chunk nobody asked for.
    if (next < this.chunkCount() && (this.manifest.digests[next] || this.downloading)) {
      this.cachedRead(next).catch(() => {});
    }
    return data;
  }

  cachedRead(index) {
    let data = this.readCache.get(index);
    if (!data) {
      data = this.readChunk(index);
      this.readCache.set(index, data);
      while (this.readCache.size > READ_CACHE_CHUNKS) this.readCache.delete(this.readCache.keys().next().value);
    }
    return data;
  }

  async readChunk(index) {
    if (this.downloading) await this.arrival(index);
    this.storedReads += 1;
    let record = await getChunk(this.url, index);
    const intact = record && record.data.byteLength === this.chunkLength(index) && (this.verified.has(index) || (await sha256(record.data)) === this.manifest.digests[index]);
    if (!intact) {
      this.manifest.digests[index] = null;
      this.manifest.complete = false;
      await putManifest(this.manifest);
      if (!this.rangeProbed) await this.probeRanges();
      await this.fetchChunk(index);
      record = await getChunk(this.url, index);
      if (!record || (await sha256(record.data)) !== this.manifest.digests[index]) {
        this.manifest.digests[index] = null;
        await putManifest(this.manifest);
        throw new HearthError(`chunk ${index + 1} did not read back intact from the browser's storage; load again to fetch it anew`, 'corrupt');
      }
      if (!this.downloading && this.missingChunks().length === 0) {
        this.manifest.complete = true;
        await putManifest(this.manifest);
      }
    }
    this.verified.add(index);
    return record.data;
  }

  /** Before re-fetching a damaged chunk of a cached model, learn the server's current state. */
  async probeRanges() {
    this.rangeProbed = true;
    const resp = await fetchOrExplain(this.url, { headers: { Range: 'bytes=0-0' }, signal: this.signal, cache: 'no-store' });
    await resp.body?.cancel();
    if (resp.status !== 206) {
      this.rangeSupported = false;
      if (resp.status !== 200) throw httpError(this.url, resp.status, resp.statusText);
    }
  }

  /** Copies `length` bytes at `offset` into `out` at `outAt`. */
  async readInto(offset, length, out, outAt) {
    const size = this.manifest.chunkSize;
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / size);
      const data = await this.chunk(index);
      const from = at - index * size;
      const n = Math.min(length - done, data.byteLength - from);
      out.set(new Uint8Array(data, from, n), outAt + done);
      done += n;
    }
  }
}

/** Files (a model's parts) seen back to back as one byte range. */
export class Concatenation {
  constructor(parts) {
    this.parts = parts; // objects with size and readInto(offset, length, out, outAt)
  }

  get size() { return this.parts.reduce((n, p) => n + p.size, 0); }
  get partLens() { return this.parts.map((p) => p.size); }

  async read(offset, length) {
    const out = new Uint8Array(length);
    let start = 0;
    let done = 0;
    for (const part of this.parts) {
      const end = start + part.size;
      const at = offset + done;
      if (done < length && at < end) {
        const n = Math.min(length - done, end - at);
        await part.readInto(at - start, n, out, done);
        done += n;
      }
      start = end;
    }
    if (done !== length) throw new HearthError(`read of ${length} bytes at ${offset} runs past the end of the model`, 'range');
    return out;
  }
}

/** A user's file (or one part of a split model) read straight from disk. */
export class BlobFile {
  constructor(blob) { this.blob = blob; }
  get size() { return this.blob.size; }
  async readInto(offset, length, out, outAt) {
    let bytes;
    try {
      bytes = await this.blob.slice(offset, offset + length).arrayBuffer();
    } catch (e) {
      throw new HearthError(`cannot read ${this.blob.name ?? 'the file'} (${e?.message ?? e}); it may have been moved or deleted`, 'file');
    }
    out.set(new Uint8Array(bytes), outAt);
  }
}
