// A static file server on 127.0.0.1 for browser tests: serves the repository (www/, the
// built package, fixtures, models/) with HTTP Range support and ETags, logs every request,
// and injects faults into model downloads on request.
//
//   const server = await startServer();           // server.url, server.log, server.faults
//   server.faults.set('/tests/fixtures/x.gguf', { dropAfterBytes: 300000, times: 1 });
//
// Fault rule fields (per path): status (answer with this HTTP status), noRange (ignore Range
// headers, send the whole file), dropAfterBytes (cut the connection after this many body
// bytes), contentLength (announce this length instead of the real one), etag (a different
// validator), delayMs (wait before answering), servePath (serve another file's bytes under this path), skip (let this many
// requests through first), times (apply this many times, then forget the rule; default: forever).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.webmanifest': 'application/manifest+json', '.gguf': 'application/octet-stream', '.ts': 'text/plain; charset=utf-8',
};

function etagOf(stat) {
  return `"${crypto.createHash('sha1').update(`${stat.size}-${stat.mtimeMs}`).digest('hex').slice(0, 16)}"`;
}

export async function startServer({ root = ROOT, port = 0, headers = {}, mounts = {} } = {}) {
  const log = [];
  const faults = new Map();

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const entry = { method: req.method, path: decodeURIComponent(url.pathname), range: req.headers.range ?? null, status: 0, bytes: 0 };
    log.push(entry);
    let rule = faults.get(entry.path);
    if (rule?.skip > 0) {
      rule.skip -= 1;
      rule = { servePath: rule.servePath, etag: rule.etag }; // what the file is, without the fault
    } else if (rule && rule.times !== undefined && --rule.times <= 0) {
      faults.delete(entry.path);
    }
    if (rule) entry.fault = { ...rule };

    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (rule?.delayMs) {
      const delayed = { ...rule, delayMs: 0 };
      setTimeout(() => respond(req, res, entry, delayed), rule.delayMs);
      return;
    }
    respond(req, res, entry, rule);
  });

  function respond(req, res, entry, rule) {
    if (rule?.status) {
      entry.status = rule.status;
      res.writeHead(rule.status, { 'Content-Type': 'text/plain' });
      res.end(`injected ${rule.status}`);
      return;
    }
    let rel = entry.path.endsWith('/') ? `${entry.path}index.html` : entry.path;
    if (rule?.servePath) rel = rule.servePath;
    // A mount maps a path prefix to another folder (the demo's /models/ → the repo's models/).
    const mount = Object.keys(mounts).find((prefix) => rel.startsWith(prefix));
    const base = mount ? path.resolve(mounts[mount]) : root;
    const file = path.join(base, path.normalize(mount ? rel.slice(mount.length) : rel));
    if (!file.startsWith(base)) { res.writeHead(403).end(); return; }
    let stat;
    try {
      stat = fs.statSync(file);
      if (stat.isDirectory()) throw new Error('directory');
    } catch {
      entry.status = 404;
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const type = MIME[path.extname(file)] ?? 'application/octet-stream';
    const common = { 'Content-Type': type, 'ETag': rule?.etag ?? etagOf(stat), 'Last-Modified': stat.mtime.toUTCString(), 'Cache-Control': 'no-cache' };
    let start = 0;
    let end = stat.size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && !rule?.noRange) {
      start = Number(range[1]);
      end = range[2] === '' ? stat.size - 1 : Math.min(Number(range[2]), stat.size - 1);
      if (start >= stat.size || start > end) {
        entry.status = 416;
        res.writeHead(416, { ...common, 'Content-Range': `bytes */${stat.size}` }).end();
        return;
      }
      status = 206;
      common['Content-Range'] = `bytes ${start}-${end}/${stat.size}`;
    }
    if (!rule?.noRange) common['Accept-Ranges'] = 'bytes';
    const length = end - start + 1;
    entry.status = status;
    res.writeHead(status, { ...common, 'Content-Length': rule?.contentLength ?? length });
    if (req.method === 'HEAD') { res.end(); return; }
    const stream = fs.createReadStream(file, { start, end });
    let sent = 0;
    stream.on('data', (chunk) => {
      if (rule?.dropAfterBytes !== undefined && sent + chunk.length > rule.dropAfterBytes) {
        const keep = rule.dropAfterBytes - sent;
        if (keep > 0) res.write(chunk.subarray(0, keep));
        entry.bytes = sent + Math.max(keep, 0);
        entry.dropped = true;
        stream.destroy();
        // Let the partial body reach the client, then cut the connection.
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
      sent += chunk.length;
      entry.bytes = sent;
      if (!res.write(chunk)) { stream.pause(); res.once('drain', () => stream.resume()); }
    });
    stream.on('end', () => res.end());
    stream.on('error', () => res.destroy());
  }
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: actual } = server.address();
  return {
    url: `http://127.0.0.1:${actual}`,
    log,
    faults,
    /** Requests whose path starts with `prefix` (e.g. a model's path). */
    requests(prefix) { return log.filter((e) => e.path.startsWith(prefix)); },
    clearLog() { log.length = 0; },
    close() { return new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }); },
  };
}

// `node tests/browser/server.mjs [port]` serves the repository for a manual look.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await startServer({ port: Number(process.argv[2] ?? 8080) });
  console.log(`serving ${ROOT} on ${server.url}`);
}
