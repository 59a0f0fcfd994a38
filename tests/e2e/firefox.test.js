// The reliability cases of the CPU path (reliability.test.js) in Firefox, whose WebAssembly,
// workers and file inputs are another engine's: bad files, bad sets and settings, a run that
// blows up, Stop and train again, new data refused while training, memory across epochs.
// Firefox is driven by puppeteer-core over WebDriver BiDi; its file input takes files, not
// folders, so classes come from the files' names (`rows_3.png` is of class "rows").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchFirefox } from './browser.js';
import { greyPng, writeFileZoo, writeShapeFolders } from './images.js';

let server;
let browser;

before(async () => {
  server = await serveStatic(new URL('../../dist', import.meta.url).pathname);
  browser = await launchFirefox();
});

after(async () => {
  await browser?.close();
  server?.close();
});

const folder = (name) => mkdtempSync(join(tmpdir(), `siamese-web-firefox-${name}-`));

/** The page in a new tab, with the few things the tests do to it. */
async function openApp(query) {
  const page = await browser.newPage();
  const problems = [];
  // Firefox reports a thumbnail it cannot decode (a broken file of the user's, shown so that they
  // can remove it) as a page error; that one is expected here.
  page.on('pageerror', (error) => { if (error.message !== 'Image corrupt or truncated.') problems.push(error.message); });
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html${query}`);
  const app = {
    page,
    problems,
    text: (selector) => page.$eval(selector, (element) => element.innerText),
    disabled: (selector) => page.$eval(selector, (element) => element.disabled),
    waitForText: (selector, pattern, timeout = 60_000) => page.waitForFunction(
      (selector, source) => new RegExp(source).test(document.querySelector(selector)?.innerText ?? ''),
      { timeout, polling: 250 }, selector, pattern.source),
    setting: (name, value) => page.$eval(`#settings [name="${name}"]`, (element, value) => { element.value = value; }, value),
    upload: async (paths) => {
      await page.$eval('#messages', (element) => element.replaceChildren());
      await page.$eval('#dataset-summary', (element) => element.replaceChildren());
      await (await page.$('#pick-files')).uploadFile(...paths);
      await app.waitForText('#dataset-summary', /training and \d+ test images/);
      return app.text('#messages');
    },
    /** Clicks Train and waits for the run to end; returns the state and messages. */
    train: async (timeout = 180_000) => {
      await page.$eval('#messages', (element) => element.replaceChildren());
      await page.click('#train');
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), { timeout, polling: 500 });
      return page.evaluate(() => ({
        state: document.body.dataset.state,
        result: document.getElementById('result-json').textContent,
        messages: document.getElementById('messages').innerText,
      }));
    },
  };
  await page.waitForFunction(() => document.body.dataset.state === 'idle', { timeout: 60_000 });
  return app;
}

test('Firefox: broken files are named with the reason, unusual ones load, one class is refused', async () => {
  const app = await openApp('?epochs=1&backend=auto');
  assert.match(await app.text('#backend-status'), /No WebGPU .*training will run on the CPU/);
  const zoo = writeFileZoo(folder('zoo'));
  const said = await app.upload(zoo.files);
  for (const [name, message] of zoo.broken) assert.match(said, message, name);
  for (const note of zoo.notes) assert.match(said, note);
  const cards = await app.page.$$eval('.class-card:not(.unusable) figcaption', (captions) => captions.map((c) => c.innerText));
  assert.deepEqual(cards.sort(), zoo.cards);
  const run = await app.train();
  assert.equal(run.state, 'done', run.messages);
  assert.equal(JSON.parse(run.result).backend, 'cpu');

  const one = folder('one-class');
  for (let i = 0; i < 6; i++) writeFileSync(join(one, `disc_${i}.png`), greyPng(28, 28, () => 40 * i));
  assert.match(await app.upload([0, 1, 2, 3, 4, 5].map((i) => join(one, `disc_${i}.png`))),
    /all images are of one class \(disc\): add images of at least one other class/);
  assert.equal(await app.disabled('#train'), true);
  assert.deepEqual(app.problems, []);
  await app.page.close();
});

test('Firefox: bad settings are refused, a run that blows up keeps the model from before, Stop then Train works, new data waits', async () => {
  const app = await openApp('?dataset=mnist&train_images=1000&test_images=300&backend=cpu');
  await app.waitForText('#dataset-summary', /MNIST digits: 999 training/);
  await app.setting('epochs', '1');
  assert.equal((await app.train()).state, 'done');
  await app.waitForText('#model-status', /^Current model/);
  const model = await app.text('#model-status');

  for (const [name, value, expected] of [
    ['epochs', '0', /invalid settings: epochs is "0": it must be a whole number, 1 or more/],
    ['margin', '0', /margin is "0": it must be a number above 0/],
    ['learning_rate', '10', /(loss became (NaN|inf)|loss exploded to|every image maps to the same embedding).*training stopped; lower the learning rate/],
  ]) {
    await app.setting('epochs', '2');
    await app.setting('margin', '1');
    await app.setting('learning_rate', '0.001');
    await app.setting(name, value);
    const run = await app.train();
    assert.equal(run.state, 'error', `${name}=${value} trained`);
    assert.match(run.messages, expected);
    assert.equal(await app.text('#model-status'), model, 'the model from before is kept');
  }

  await app.setting('learning_rate', '0.001');
  await app.setting('epochs', '2');
  await app.page.click('#train');
  await app.waitForText('#progress-text', /^Epoch 1\/2 · step [2-9]/);
  await app.page.click('#stop');
  await app.waitForText('#progress-text', /^Stopped after 0 epoch/);
  const other = folder('other');
  writeShapeFolders(other, 4, { flat: true });
  const run = app.train();
  await app.waitForText('#progress-text', /^Epoch 1\/2 · step/);
  await (await app.page.$('#pick-files')).uploadFile(join(other, 'rows_0.png'), join(other, 'disc_0.png'));
  await app.waitForText('#messages', /Training is running: stop it before loading other data/);
  const finished = await run;
  assert.equal(finished.state, 'done', finished.messages);
  assert.equal(JSON.parse(finished.result).epochs, 2);
  assert.match(await app.text('#dataset-summary'), /MNIST digits: 999 training/);
  assert.deepEqual(app.problems, []);
  await app.page.close();
});

test('Firefox: the worker\'s memory stays flat from epoch to epoch', async () => {
  const app = await openApp('?dataset=mnist&train_images=2000&test_images=300&backend=cpu&epochs=3');
  await app.waitForText('#dataset-summary', /MNIST digits: \d+ training/);
  const run = await app.train(300_000);
  assert.equal(run.state, 'done', run.messages);
  const memory = JSON.parse(await app.page.$eval('#epoch-status', (element) => element.dataset.memory));
  console.log('firefox memory per epoch (MB)', memory.map((bytes) => (bytes / 2 ** 20).toFixed(1)).join(' '));
  assert.equal(memory.length, 3);
  // A leak of one model's weights per epoch (0.9 MB at 28x28) would exceed this.
  assert.ok(memory[2] - memory[0] <= 2 ** 20, `memory grew from ${memory[0]} to ${memory[2]} bytes`);
  assert.deepEqual(app.problems, []);
  await app.page.close();
});
