// A moderator's session in Debian's headless Chromium (driven by playwright-core): open the
// console, get sent to the login page, fail with a wrong password, log in, find the reel's
// review item with its poster, caption and signal reasons, remove it with a reason. Prints
// what it saw as one JSON line on stdout. Used by tests/integration/test_console_browser.py.
//
//   node moderate.mjs <console URL> <reel id> <name> <password> [--chromium PATH]
import { chromium } from 'playwright-core';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { chromium: { type: 'string', default: '/usr/bin/chromium' } },
});
const [consoleUrl, reelId, name, password] = positionals;
if (!password) {
  console.error('usage: node moderate.mjs <console URL> <reel id> <name> <password>');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: values.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const result = { dialogs: [], consoleErrors: [] };
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30_000);
  page.on('dialog', async (dialog) => { result.dialogs.push(dialog.message()); await dialog.dismiss(); });
  page.on('console', (message) => { if (message.type() === 'error') result.consoleErrors.push(message.text()); });

  await page.goto(`${consoleUrl}/console`);
  result.redirectedTo = new URL(page.url()).pathname;

  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', `${password}-wrong`);
  await Promise.all([page.waitForLoadState('load'), page.click('#login')]);
  result.wrongPasswordError = await page.textContent('#error');

  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${consoleUrl}/console`), page.click('#login')]);
  result.loggedInAt = new URL(page.url()).pathname;
  result.cookies = (await page.context().cookies()).map((c) => ({
    name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite,
  }));

  const item = page.locator(`section[data-reel="${reelId}"]`);
  await item.waitFor();
  const poster = item.locator('img');
  await poster.evaluate((img) => img.complete || new Promise((ok) => { img.onload = ok; img.onerror = ok; }));
  result.posterWidth = await poster.evaluate((img) => img.naturalWidth);
  result.caption = await item.locator('.caption').textContent();
  result.reasons = await item.locator('td.reason').allTextContents();

  await item.locator('input[name=reason]').fill('graphic content, removed in the browser test');
  await Promise.all([
    page.waitForURL(/\/console\?notice=/),
    item.locator('button[value=remove]').click(),
  ]);
  result.notice = await page.textContent('#notice');
  result.stillListed = await page.locator(`section[data-reel="${reelId}"]`).count();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
