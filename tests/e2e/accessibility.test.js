// An automated accessibility check (axe-core, WCAG 2.x A and AA rules) of the page and of the
// example article with its widgets, in the light and the dark colour scheme: no serious or
// critical violation. What a machine cannot judge (reading order, wording) is not covered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { serveStatic } from './server.js';
import { launchChromium, waitForRun } from './browser.js';

const DIST = new URL('../../dist', import.meta.url).pathname;
const AXE = readFileSync(new URL('../../node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
let server;
let browser;
let base;

before(async () => {
  server = await serveStatic(DIST);
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** The serious and critical violations on the page as it is now, one line each. */
async function violations(page) {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    // @ts-ignore: axe is the script evaluated above
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.join(', ')}`);
}

/** The surface each scheme paints (app.css and widget.css), so that each run checks the colours it names. */
const SURFACE = { light: 'rgb(255, 255, 255)', dark: 'rgb(17, 24, 39)' };

for (const colorScheme of ['light', 'dark']) {
  test(`the page, trained and in use, has no serious accessibility violation (${colorScheme})`, async () => {
    const page = await browser.newPage();
    await page.emulateMedia({ colorScheme });
    await page.goto(`${base}index.html?dataset=mnist&train_images=300&test_images=200&epochs=1&backend=cpu&autostart=1`);
    assert.equal((await waitForRun(page, 300_000)).state, 'done');
    await page.waitForSelector('#open-set[data-result]', { timeout: 120_000 });
    assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), SURFACE[colorScheme]);
    assert.deepEqual(await violations(page), []);
    await page.close();
  });

  test(`the example article and its widgets have no serious accessibility violation and take a blog's theme (${colorScheme})`, async () => {
    const page = await browser.newPage();
    await page.emulateMedia({ colorScheme });
    await page.goto(`${base}www/article.html`);
    await page.waitForFunction(() => [...document.querySelectorAll('siamese-trainer')]
      .every((widget) => widget.shadowRoot?.querySelector('button:not([disabled])')), null, { timeout: 120_000 });
    const surfaces = await page.evaluate(() => [...document.querySelectorAll('siamese-trainer')]
      .map((widget) => getComputedStyle(widget.shadowRoot.querySelector('.widget')).backgroundColor));
    assert.ok(surfaces.length >= 2 && surfaces.every((surface) => surface === SURFACE[colorScheme]), surfaces.join());
    assert.deepEqual(await violations(page), []);

    // A blog's theme on one widget (README, "Theming") reaches that widget alone.
    const buttons = () => page.evaluate(() => ['first', 'second'].map((id) =>
      getComputedStyle(document.getElementById(id).shadowRoot.querySelector('[data-ref="train"]')).backgroundColor));
    const [, untouched] = await buttons();
    await page.addStyleTag({ content: '#first { --siamese-accent: rgb(15, 118, 110); }' });
    assert.deepEqual(await buttons(), ['rgb(15, 118, 110)', untouched]);
    await page.close();
  });
}
