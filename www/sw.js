// Hearth's service worker: keeps the app shell and the engine (wasm) so the page opens and
// chats with the network off, and so that, once installed, opening the page and chatting make
// no request at all. Models are not its business: they live in IndexedDB, and model downloads
// (Range requests, other origins, /models/) pass straight through.
//
// version.js (written by scripts/build-web.sh) names the build: the browser's update check
// sees it change, installs the new shell under a new cache and drops the old one.

importScripts('version.js');
const CACHE = `hearth-shell-${self.HEARTH_BUILD}`;
const SHELL = [
  './', 'index.html', 'app.css', 'app.js', 'markdown.js', 'conversations.js', 'manifest.webmanifest',
  'icons/icon-192.png', 'icons/icon-512.png', 'icons/icon-maskable-512.png', 'icons/favicon-32.png',
  'pkg/hearth.js', 'pkg/worker.js', 'pkg/store.js', 'pkg/hearth_wasm.js', 'pkg/hearth_wasm_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

function isShell(request) {
  const url = new URL(request.url);
  return request.method === 'GET' && url.origin === self.location.origin && !request.headers.has('Range') && !url.pathname.includes('/models/');
}

// Cache first: the shell of this build is immutable; a new build comes with a new worker.
self.addEventListener('fetch', (event) => {
  if (!isShell(event.request)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const cached = await cache.match(event.request, { ignoreSearch: true });
    if (cached) return cached;
    const response = await fetch(event.request);
    if (response.ok) cache.put(event.request, response.clone());
    return response;
  })());
});
