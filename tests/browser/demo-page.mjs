// Driving the demo page (www/) in tests: open it, load a model by address, send a message.

/** A new page of the demo, ready; `page.errors` collects uncaught page errors. */
export async function openDemo(server, context, viewport = { width: 1200, height: 800 }) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`${server.url}/`);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

/** Loads the model at `url` through the address field, until the page says it is ready. */
export async function loadByUrl(page, url) {
  await page.fill('#custom-url', url);
  await page.click('#load-button');
  // Ready with this model: a switch to another host reloads the page, and until it does the
  // status still says the last model is ready.
  const name = new URL(url, 'http://x').pathname.split('/').pop();
  await page.locator('#model-status[data-ready="true"]', { hasText: `${name} is ready` }).waitFor({ state: 'attached', timeout: 120_000 });
}

/** Sends `text` and waits for the whole reply (its footer); returns the reply. */
export async function sendAndWait(page, text) {
  const before = await page.locator('.message.assistant').count();
  await page.fill('#prompt', text);
  await page.keyboard.press('Enter');
  const reply = page.locator('.message.assistant').nth(before);
  await reply.locator('.footer').waitFor({ timeout: 180_000 });
  return reply;
}
