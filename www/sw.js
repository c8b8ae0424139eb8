// Hearth's service worker: keeps the app shell and the engine (wasm) so the page opens and
// chats with the network off. Models are not its business: they live in IndexedDB, and model
// downloads (Range requests, other origins, /models/) pass straight through.

const CACHE = 'hearth-shell-v1';
const SHELL = [
  './', 'index.html', 'app.css', 'app.js', 'markdown.js', 'manifest.webmanifest',
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

// Network first (so a rebuilt app shows up at once), the cache when offline.
self.addEventListener('fetch', (event) => {
  if (!isShell(event.request)) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(event.request);
      if (response.ok) cache.put(event.request, response.clone());
      return response;
    } catch (e) {
      const cached = await cache.match(event.request, { ignoreSearch: true });
      if (cached) return cached;
      throw e;
    }
  })());
});
