// Takes the README's screenshot: the demo on the built-in SmolLM2 preset answering a question.
// Slow on a software GPU (minutes); run by hand: node tests/browser/readme-screenshot.mjs
import path from 'node:path';
import { startServer, ROOT } from './server.mjs';
import { launch } from './browser.mjs';

const server = await startServer({ root: path.join(ROOT, 'www'), mounts: { '/models/': path.join(ROOT, 'models') } });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
  await page.goto(`${server.url}/`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.fill('#max-tokens', '14');
  await page.dispatchEvent('#max-tokens', 'change');
  await page.fill('#temperature', '0');
  await page.dispatchEvent('#temperature', 'input');
  await page.click('#start-builtin'); // the page's own model: SmolLM2
  await page.waitForSelector('#model-status[data-ready="true"]', { timeout: 300_000 });
  await page.fill('#prompt', 'What color is the sky on a clear day?');
  await page.keyboard.press('Enter');
  await page.locator('.message.assistant .footer').waitFor({ timeout: 900_000 });
  await page.evaluate(() => document.querySelector('.presets').scrollIntoView());
  await page.screenshot({ path: path.join(ROOT, 'docs/demo.png') });
  console.log('wrote docs/demo.png');
} finally {
  await browser.close();
  await server.close();
}
