// The demo as the assistant people keep open, in headless Chromium: a first answer from one
// click on the page's own model, conversations kept in IndexedDB (listed newest first,
// switched, renamed, deleted, restored after a reload and offline), "delete all my data"
// leaving no record, and an axe-core pass with no serious or critical violation.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, ROOT } from './server.mjs';
import { openDemo as open, loadByUrl, sendAndWait } from './demo-page.mjs';
import { launch } from './browser.mjs';

const openDemo = (context, viewport) => open(server, context, viewport);
const MODEL = '/fixtures/tiny-q8_0.gguf';
let server;
let browser;

before(async () => {
  server = await startServer({ root: path.join(ROOT, 'www'), mounts: { '/fixtures/': path.join(ROOT, 'tests/fixtures'), '/models/': path.join(ROOT, 'models') } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});




const chatTitles = (page) => page.locator('#chat-list .chat-title').allTextContents();

/** The list's titles once they are `expected` (the list redraws after each save), or what
 *  they are after 10 s. */
async function titlesBecome(page, expected) {
  await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('#chat-list .chat-title')].map((b) => b.textContent)) === want, JSON.stringify(expected), { timeout: 10_000 }).catch(() => {});
  return chatTitles(page);
}

/** Opens the conversation titled `title` from the list, once it is on screen. */
async function openChat(page, title) {
  await page.locator('#chat-list .chat-title', { hasText: title }).click();
  await page.locator('#chat-list .chat-title[aria-current="true"]', { hasText: title }).waitFor();
}

/** Every IndexedDB database of the page's origin, with the records of each store. */
function storedRecords(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const { name } of await indexedDB.databases()) {
      const db = await new Promise((resolve, reject) => { const r = indexedDB.open(name); r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
      for (const store of db.objectStoreNames) {
        const count = await new Promise((resolve) => { const r = db.transaction(store).objectStore(store).count(); r.onsuccess = () => resolve(r.result); });
        out[`${name}/${store}`] = count;
      }
      db.close();
    }
    return out;
  });
}

test('a fresh profile reaches a first answer by one click on the built-in model', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  const start = page.locator('#start-builtin');
  assert.match(await start.textContent(), /^Start with SmolLM2 135M Instruct \(98(\.0)? MB, served by this page\)$/);
  await page.fill('#max-tokens', '6');
  await page.dispatchEvent('#max-tokens', 'change');
  await start.click();
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 180_000 });
  assert.equal(await start.isHidden(), true, 'no offer once a model is loaded');
  assert.equal(await page.getAttribute('.preset[data-preset="smollm2"]', 'aria-current'), 'true');
  const reply = await sendAndWait(page, 'Hi!');
  assert.match(await reply.locator('.stats').textContent(), /\d+ tokens/);
  assert.deepEqual(await titlesBecome(page, ['Hi!']), ['Hi!'], 'the first message started a conversation');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('conversations are kept on the device: listed, switched, renamed, deleted, restored after a reload and offline', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  await page.fill('#max-tokens', '4');
  await page.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(page, `${server.url}${MODEL}`);
  await sendAndWait(page, 'First chat, first question');
  await sendAndWait(page, 'First chat, second question');
  await page.click('#new-chat');
  assert.equal(await page.locator('.message').count(), 0);
  await sendAndWait(page, 'Second chat');
  assert.deepEqual(await titlesBecome(page, ['Second chat', 'First chat, first question']), ['Second chat', 'First chat, first question'], 'newest first');

  // Back to the first: its messages, and a follow-up in it.
  await openChat(page, 'First chat');
  assert.deepEqual(await page.locator('.message.user').allTextContents(), ['First chat, first question', 'First chat, second question']);
  assert.equal(await page.locator('.message.assistant .footer').count(), 2, 'replies keep their figures');
  await sendAndWait(page, 'First chat, third question');
  assert.deepEqual(await titlesBecome(page, ['First chat, first question', 'Second chat']), ['First chat, first question', 'Second chat']);

  // Renamed in place; Escape keeps the old title.
  await page.getByRole('button', { name: 'Rename “Second chat”' }).click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('Colours');
  await page.keyboard.press('Escape');
  await page.locator('#chat-list .rename').waitFor({ state: 'detached' });
  assert.deepEqual(await titlesBecome(page, ['First chat, first question', 'Second chat']), ['First chat, first question', 'Second chat']);
  await page.getByRole('button', { name: 'Rename “Second chat”' }).click();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('Colours');
  await page.keyboard.press('Enter');
  await page.locator('#chat-list .rename').waitFor({ state: 'detached' });
  assert.deepEqual(await titlesBecome(page, ['Colours', 'First chat, first question']), ['Colours', 'First chat, first question']);

  // A reload: the list and the open chat come back.
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.deepEqual(await titlesBecome(page, ['Colours', 'First chat, first question']), ['Colours', 'First chat, first question']);
  assert.equal(await page.getAttribute('#chat-list [aria-current="true"]', 'class'), 'chat-title');
  assert.equal(await page.textContent('#chat-list [aria-current="true"]'), 'First chat, first question');
  assert.equal(await page.locator('.message.user').count(), 3);

  // Offline: the page, the conversations and the model all come from this browser.
  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.deepEqual(await titlesBecome(page, ['Colours', 'First chat, first question']), ['Colours', 'First chat, first question']);
  await openChat(page, 'Colours');
  assert.deepEqual(await page.locator('.message.user').allTextContents(), ['Second chat']);
  await sendAndWait(page, 'Offline question');

  // Deleting the open chat leaves a new, empty one.
  await page.getByRole('button', { name: 'Delete “Colours”' }).click();
  assert.deepEqual(await titlesBecome(page, ['First chat, first question']), ['First chat, first question']);
  assert.equal(await page.locator('.message').count(), 0);
  await context.setOffline(false);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('"delete all my data" leaves no IndexedDB records', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  await page.fill('#max-tokens', '3');
  await page.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(page, `${server.url}${MODEL}`);
  await sendAndWait(page, 'Something private');
  const before = await storedRecords(page);
  assert.ok(before['hearth-chats/conversations'] === 1 && before['hearth-models/chunks'] > 0, JSON.stringify(before));
  page.once('dialog', (d) => d.accept());
  await page.click('#delete-all');
  await page.waitForSelector('#model-status:has-text("Everything Hearth kept in this browser is deleted")');
  const after = await storedRecords(page);
  assert.deepEqual(Object.entries(after).filter(([, n]) => n > 0), [], JSON.stringify(after));
  assert.deepEqual(await titlesBecome(page, []), []);
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('hearth:')).length), 0);
  assert.equal(await page.isVisible('#start-builtin'), true, 'back to a first visit');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('two tabs of the page share one engine, and the second goes on when the first closes', async () => {
  const context = await browser.newContext();
  const first = await openDemo(context);
  await first.fill('#max-tokens', '4');
  await first.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(first, `${server.url}${MODEL}`);
  await sendAndWait(first, 'From the first tab');
  // The second tab comes back to the last model: the first tab's, already on the GPU.
  server.clearLog();
  const second = await openDemo(context);
  await second.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  assert.match(await second.textContent('#model-status'), /shared with another tab of this page/);
  assert.deepEqual(server.requests(MODEL), [], 'nothing downloaded again');
  assert.equal(await second.locator('.message').count(), 0, 'a new tab opens a new chat');
  // Both chat, each in its own conversation, at the same time.
  await Promise.all([sendAndWait(first, 'First tab again'), sendAndWait(second, 'From the second tab')]);
  await first.close();
  await sendAndWait(second, 'After the first tab closed');
  assert.equal(await second.locator('.message.assistant .footer').count(), 2);
  assert.deepEqual(second.errors, []);
  await context.close();
});

test('going back to a chat reuses the KV cache while it holds that chat, else prefills it again', async () => {
  const context = await browser.newContext();
  const page = await openDemo(context);
  await page.fill('#max-tokens', '4');
  await page.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(page, `${server.url}${MODEL}`);
  /** The reply's prompt figures: [tokens from the cache, prompt tokens]. */
  const cacheFigures = async (reply) => {
    const m = (await reply.locator('.stats').textContent()).match(/(\d+) of (\d+) prompt tokens from the cache/);
    assert.ok(m, 'the footer gives the prompt figures');
    return [Number(m[1]), Number(m[2])];
  };
  const first = await cacheFigures(await sendAndWait(page, 'First chat, first question'));
  assert.equal(first[0], 0, 'a new chat prefills everything');
  // A new chat opened and left without a message: the cache still holds the first chat.
  await page.click('#new-chat');
  await openChat(page, 'First chat');
  const [reused, prompt] = await cacheFigures(await sendAndWait(page, 'First chat, second question'));
  assert.ok(reused >= first[1] && reused < prompt, `the first exchange came from the cache: ${reused} of ${prompt}`);
  // Another chat in between fills the cache with itself: the first is prefilled again.
  await page.click('#new-chat');
  await sendAndWait(page, 'Second chat');
  await openChat(page, 'First chat');
  const [again, total] = await cacheFigures(await sendAndWait(page, 'First chat, third question'));
  assert.ok(again < first[1], `prefilled again, only a shared beginning reused: ${again} of ${total}`);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('without SharedWorker, a second tab waits for the engine or takes it over', async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => Object.defineProperty(window, 'SharedWorker', { value: undefined, configurable: true }));
  const first = await openDemo(context);
  await first.fill('#max-tokens', '4');
  await first.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(first, `${server.url}${MODEL}`);
  // The second tab comes back to the last model, which the first tab holds: it waits, and
  // offers to take it.
  const second = await openDemo(context);
  const take = second.getByRole('button', { name: 'Use it in this tab instead' });
  await take.waitFor({ timeout: 60_000 });
  assert.match(await second.textContent('#model-status'), /Another tab of this page has .* on the GPU; this tab waits/);
  await take.click();
  await second.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  // The first tab lost it, says so, and can take it back.
  const back = first.getByRole('button', { name: 'Use it here again' });
  await back.waitFor({ timeout: 30_000 });
  assert.match(await first.textContent('#model-status'), /moved to another tab of this page/);
  assert.equal(await first.isDisabled('#prompt'), true, 'no chatting without the engine');
  await sendAndWait(second, 'From the second tab');
  await back.click();
  await first.waitForSelector('#model-status[data-ready="true"]', { state: 'attached', timeout: 120_000 });
  await second.getByRole('button', { name: 'Use it here again' }).waitFor({ timeout: 30_000 });
  await sendAndWait(first, 'Back in the first tab');
  assert.deepEqual([first.errors, second.errors], [[], []]);
  await context.close();
});

test('axe-core finds no serious or critical accessibility violation', async () => {
  // axe is injected into the page; the page's CSP would refuse an injected script.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await openDemo(context);
  await page.addScriptTag({ path: path.join(ROOT, 'node_modules/axe-core/axe.min.js') });
  const audit = async (what) => {
    const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], what);
  };
  await audit('a first visit');
  await page.fill('#max-tokens', '3');
  await page.dispatchEvent('#max-tokens', 'change');
  await loadByUrl(page, `${server.url}${MODEL}`);
  await sendAndWait(page, 'Hello');
  await audit('a conversation');
  // Narrow screen: the composer stays reachable.
  await page.setViewportSize({ width: 380, height: 700 });
  assert.equal(await page.locator('#prompt').isVisible(), true);
  await audit('a narrow screen');
  await context.close();
});
