// Data and settings that cannot train, tried in the page as a user meets them: each is refused
// with a message that says what to do, or trains correctly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium, waitForRun } from './browser.js';
import { greyPng, writeShapeFolders } from './images.js';

let server;
let browser;

before(async () => {
  server = await serveStatic(new URL('../../dist', import.meta.url).pathname);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

async function openPage(query = '') {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html${query}`);
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  return { page, problems };
}

/** Uploads the folder `root` and waits for the summary of the new data. */
async function upload(page, root) {
  await page.locator('#dataset-summary').evaluate((el) => el.replaceChildren());
  await page.locator('#messages').evaluate((el) => el.replaceChildren());
  await page.setInputFiles('#pick-folder', root);
  await page.waitForFunction(() => /training and \d+ test images/.test(document.getElementById('dataset-summary').innerText));
  return page.locator('#messages').innerText();
}

const folder = (name) => mkdtempSync(join(tmpdir(), `siamese-web-${name}-`));
const blank = (level) => greyPng(28, 28, () => level);

test('sets that cannot train say what to add; odd but usable sets train', async () => {
  const { page, problems } = await openPage('?epochs=1&backend=cpu');

  const only = join(folder('only-disc'), 'disc');
  mkdirSync(only);
  for (let i = 0; i < 6; i++) writeFileSync(join(only, `d${i}.png`), blank(40 * i));
  assert.match(await upload(page, join(only, '..')), /all images are of one class \(disc\): add images of at least one other class/);
  assert.equal(await page.locator('#train').isDisabled(), true);

  const nothing = folder('nothing');
  mkdirSync(join(nothing, 'notes'));
  writeFileSync(join(nothing, 'notes', 'readme.png'), 'plain text');
  const said = await upload(page, nothing);
  assert.match(said, /readme\.png: not an image/);
  assert.match(said, /there are no images: add at least two classes/);
  assert.equal(await page.locator('#train').isDisabled(), true);

  // A class of one image beside real classes, and 100 classes of two images each, train.
  for (const [name, build] of [
    ['lonely', (root) => {
      writeShapeFolders(root, 10);
      mkdirSync(join(root, 'lonely'));
      writeFileSync(join(root, 'lonely', 'only.png'), blank(128));
    }],
    ['hundred', (root) => {
      for (let c = 0; c < 100; c++) {
        mkdirSync(join(root, `class${c}`));
        for (let i = 0; i < 2; i++) writeFileSync(join(root, `class${c}`, `${i}.png`), greyPng(28, 28, (x, y) => ((x * (c % 10) + y * Math.floor(c / 10) + i) % 7 < 3 ? 230 : 20)));
      }
    }],
  ]) {
    const root = folder(name);
    build(root);
    await upload(page, root);
    assert.equal(await page.locator('#train').isDisabled(), false, name);
    await page.click('#train');
    const run = await waitForRun(page, 120_000);
    assert.equal(run.state, 'done', `${name}: ${run.messages}`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('settings that cannot train are refused before training, and divergence stops with a reason', async () => {
  const { page, problems } = await openPage('?dataset=mnist&train_images=300&test_images=200&backend=cpu');
  await page.waitForSelector('.class-card');
  for (const [name, value, expected] of [
    ['epochs', '0', /epochs must be at least 1/],
    ['margin', '0', /margin must be positive/],
    ['margin', '-1', /margin must be positive/],
    // Adam at 10 either overflows the loss or silences every unit; either way the run stops.
    ['learning_rate', '10', /(loss became (NaN|inf)|every image maps to the same embedding).*training stopped; lower the learning rate/],
  ]) {
    await page.fill('#settings [name="epochs"]', '3');
    await page.fill('#settings [name="margin"]', '1');
    await page.fill('#settings [name="learning_rate"]', '0.001');
    await page.fill(`#settings [name="${name}"]`, value);
    await page.locator('#messages').evaluate((el) => el.replaceChildren());
    await page.click('#train');
    const run = await waitForRun(page, 120_000);
    assert.equal(run.state, 'error', `${name}=${value} trained`);
    assert.match(run.messages, expected);
    assert.equal(await page.locator('#train').isDisabled(), false, 'the page stays usable');
  }
  // A batch larger than the whole set is one batch per epoch.
  await page.fill('#settings [name="learning_rate"]', '0.001');
  await page.fill('#settings [name="epochs"]', '1');
  await page.fill('#settings [name="batch_size"]', '4096');
  await page.click('#train');
  const run = await waitForRun(page, 120_000);
  assert.equal(run.state, 'done', run.messages);
  assert.deepEqual(problems, []);
  await page.close();
});
