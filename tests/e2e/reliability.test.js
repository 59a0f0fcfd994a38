// What goes wrong in users' hands, tried in the page as they meet it: bad files, sets and
// settings, a run that blows up, interruptions, a lost GPU, and thousands of images. Each is
// refused with a message that says what to do, or recovers, or trains correctly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium, openPage, waitForRun } from './browser.js';
import { greyPng, writeFileZoo, writeShapeFolders, writeStripeFolders } from './images.js';

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

async function openApp(query = '') {
  const opened = await openPage(browser, `http://127.0.0.1:${server.address().port}/index.html${query}`);
  await opened.page.waitForFunction(() => document.body.dataset.state === 'idle');
  return opened;
}

/** Uploads the folder `root` and waits for the summary of the new data. */
async function upload(page, root) {
  await page.locator('#dataset-summary').evaluate((el) => el.replaceChildren());
  await page.locator('#messages').evaluate((el) => el.replaceChildren());
  await page.setInputFiles('#pick-folder', root);
  await page.waitForFunction(() => /training and \d+ test images/.test(document.getElementById('dataset-summary').innerText));
  return page.locator('#messages').innerText();
}

/** Waits for the digits of the page's link to be the data (the classes kept from earlier tests
 * show as cards before that). */
const digitsLoaded = (page) => page.waitForFunction(() => /^MNIST digits: \d+ training/.test(document.getElementById('dataset-summary').innerText));

const folder = (name) => mkdtempSync(join(tmpdir(), `siamese-web-${name}-`));
const blank = (level) => greyPng(28, 28, () => level);

test('sets that cannot train say what to add; odd but usable sets train', async () => {
  const { page, problems } = await openApp('?epochs=1&backend=cpu');

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
  const { page, problems } = await openApp('?dataset=mnist&train_images=300&test_images=200&backend=cpu');
  await digitsLoaded(page);
  // A model trained first: a failed run must leave it the current one.
  await page.fill('#settings [name="epochs"]', '1');
  await page.click('#train');
  assert.equal((await waitForRun(page, 120_000)).state, 'done');
  await page.waitForFunction(() => /^Current model/.test(document.getElementById('model-status').innerText));
  const model = await page.locator('#model-status').innerText();
  for (const [name, value, expected] of [
    ['epochs', '0', /invalid settings: epochs is "0": it must be a whole number, 1 or more/],
    ['margin', '0', /margin is "0": it must be a number above 0/],
    ['margin', '-1', /margin is "-1": it must be a number above 0/],
    // Adam at 10 either overflows the loss or silences every unit; either way the run stops.
    ['learning_rate', '10', /(loss became (NaN|inf)|loss exploded to|every image maps to the same embedding).*training stopped; lower the learning rate/],
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
    assert.equal(await page.locator('#model-status').innerText(), model, 'the model from before is kept');
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

test('a bad setting in a link is refused naming the setting, the value given and what it may be', async () => {
  for (const [setting, expected] of [
    ['seed=-1', 'seed is "-1": it must be a whole number from 0 to 18446744073709551615'],
    ['epochs=-3', 'epochs is "-3": it must be a whole number, 1 or more'],
    ['margin=NaN', 'margin is "NaN": it must be a number above 0'],
    ['validation_split=0.99', 'validation_split is "0.99": it must be a number from 0 to 0.9'],
    ['backend=gpu9', 'backend is "gpu9": it must be auto, webgpu or cpu'],
    ['workers=0', 'workers is "0": it must be a whole number from 1 to 64'],
  ]) {
    const { page, problems } = await openApp(`?dataset=mnist&train_images=300&test_images=100&autostart=1&${setting}`);
    const run = await waitForRun(page, 120_000);
    assert.equal(run.state, 'error', `${setting} trained`);
    assert.equal(run.error, `invalid settings: ${expected}`);
    assert.deepEqual(problems, []);
    await page.close();
  }
});

test('files that are broken are each named with the reason; unusual ones load; the rest trains', async () => {
  const zoo = writeFileZoo(folder('zoo'));
  const { page, problems } = await openApp('?epochs=2&backend=cpu');
  await page.setInputFiles('#pick-files', zoo.files);
  await page.waitForFunction(() => /training and \d+ test images/.test(document.getElementById('dataset-summary').innerText));
  const said = await page.locator('#messages').innerText();
  for (const [name, message] of zoo.broken) assert.match(said, message, name);
  for (const note of zoo.notes) assert.match(said, note);
  assert.doesNotMatch(said, /sixteen-bit|cmyk|grey-alpha|wide\.bmp/);
  // A class of broken files alone stays the user's, shown as unusable until they delete it.
  assert.deepEqual((await page.locator('.class-card:not(.unusable) figcaption').allInnerTexts()).sort(), zoo.cards);
  assert.deepEqual((await page.locator('.class-card.unusable figcaption').allInnerTexts()).sort(), zoo.unusable);
  await page.click('#train');
  const run = await waitForRun(page, 120_000);
  assert.equal(run.state, 'done', run.messages);
  assert.deepEqual(problems, []);
  await page.close();
});

test('Stop mid-epoch then train again; new data is refused while training; a stopped page loses nothing', async () => {
  const { page, problems } = await openApp('?dataset=mnist&train_images=1000&test_images=300&backend=cpu&epochs=2');
  await digitsLoaded(page);
  const trainingAt = (pattern) => page.waitForFunction(
    (source) => new RegExp(source).test(document.getElementById('progress-text').innerText), pattern.source);

  await page.click('#train');
  await trainingAt(/^Epoch 1\/2 · step [2-9]/);
  await page.click('#stop');
  let run = await waitForRun(page, 60_000);
  assert.equal(run.state, 'done', run.messages);
  assert.match(await page.locator('#progress-text').innerText(), /^Stopped after 0 epoch/);

  await page.click('#train');
  await trainingAt(/^Epoch 1\/2 · step/);
  assert.equal(await page.locator('#use-mnist').isDisabled(), true);
  const other = folder('other');
  writeShapeFolders(other, 4);
  await page.setInputFiles('#pick-folder', other);
  await page.waitForFunction(() => /Training is running: stop it before loading other data/.test(document.getElementById('messages').innerText));

  // A background tab's page is throttled or frozen by the browser. Headless Chromium never
  // hides a tab, so the page's main thread is stopped outright for 5 s: training runs in the
  // worker and must go on, and the page must catch up when it runs again.
  const stepsDone = () => page.evaluate(() => {
    const [, epoch, step, steps] = document.getElementById('progress-text').innerText.match(/^Epoch (\d+)\/\d+ · step (\d+)\/(\d+)/);
    return (epoch - 1) * steps + Number(step);
  });
  const before = await stepsDone();
  await page.evaluate(() => {
    const start = performance.now();
    while (performance.now() - start < 5_000);
  });
  // The progress the worker posted meanwhile is applied as soon as the page runs again. A
  // bounded wait for it, not a sleep: within 1 s of the page running again a worker that had
  // stopped with it could train ~8 steps (~125 ms each), not the 10 asked.
  // Two CPU workers may even finish the run meanwhile: that counts as going on.
  await page.waitForFunction((start) => {
    const text = document.getElementById('progress-text').innerText;
    const [, epoch, step, steps] = text.match(/^Epoch (\d+)\/\d+ · step (\d+)\/(\d+)/) ?? [];
    return /^Finished after 2 epoch/.test(text) || (epoch && (epoch - 1) * steps + Number(step) - start >= 10);
  }, before, { timeout: 1_000, polling: 50 });
  if (!/^Finished/.test(await page.locator('#progress-text').innerText())) {
    const after = await stepsDone();
    assert.ok(after - before >= 10, `the worker trained ${after - before} steps while the page was stopped for 5 s`);
  }
  run = await waitForRun(page, 120_000);
  assert.equal(run.state, 'done', run.messages);
  assert.equal(JSON.parse(run.result).epochs, 2);
  assert.match(await page.locator('#epoch-status').innerText(), /^Epoch 2: train loss/);
  assert.match(await page.locator('#dataset-summary').innerText(), /MNIST digits: 999 training/);
  assert.deepEqual(problems, []);
  await page.close();
});

test('the GPU lost while training on WebGPU: the trainer restarts on the CPU with the same data, says so, and trains', async () => {
  const { page, problems } = await openApp('?dataset=mnist&train_images=300&test_images=200&backend=webgpu&epochs=1');
  await digitsLoaded(page);
  // Keep hold of the devices the worker asks for, to destroy them as a driver reset would.
  const [worker] = page.workers();
  await worker.evaluate(() => {
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      const device = await requestDevice.apply(this, args);
      (self.testDevices ??= []).push(device);
      return device;
    };
  });
  await page.click('#train');
  await page.waitForFunction(() => /step/.test(document.getElementById('progress-text').innerText), null, { timeout: 120_000 });
  assert.equal(await worker.evaluate(() => self.testDevices.length), 1);
  await worker.evaluate(() => self.testDevices.forEach((device) => device.destroy()));
  await page.waitForFunction(() => /WebGPU failed during training, so the trainer restarted on the CPU backend/.test(document.getElementById('messages').innerText), null, { timeout: 120_000 });
  assert.equal(await page.locator('#settings [name="backend"]').inputValue(), 'cpu');
  await page.waitForFunction(() => /MNIST digits: \d+ training/.test(document.getElementById('dataset-summary').innerText));
  await page.click('#train');
  const run = await waitForRun(page, 120_000);
  assert.equal(run.state, 'done', run.messages);
  assert.equal(JSON.parse(run.result).backend, 'cpu');
  assert.deepEqual(problems, []);
  await page.close();
});

test('10,000 uploaded images load with progress and train, and the worker\'s memory stays flat from epoch to epoch', async () => {
  const root = folder('ten-thousand');
  writeStripeFolders(root, 10_000);
  const { page, problems } = await openApp('?epochs=3&backend=cpu');
  const loadStarted = Date.now();
  await page.setInputFiles('#pick-folder', root);
  await page.waitForFunction(() => /Reading files: \d+ of 10000/.test(document.getElementById('dataset-summary').innerText));
  await page.waitForFunction(() => /8000 training and 2000 test images/.test(document.getElementById('dataset-summary').innerText), null, { timeout: 300_000 });
  const loadSeconds = (Date.now() - loadStarted) / 1000;
  await page.click('#train');
  const run = await waitForRun(page, 600_000);
  assert.equal(run.state, 'done', run.messages);
  const result = JSON.parse(run.result);
  const memory = JSON.parse(await page.locator('#epoch-status').getAttribute('data-memory'));
  console.log('ten-thousand: loaded in', loadSeconds, 's;', run.result, 'memory per epoch (MB)', memory.map((bytes) => (bytes / 2 ** 20).toFixed(1)).join(' '));
  assert.ok(result.test_acc_best > 0.9, `test pair accuracy ${result.test_acc_best}`);
  assert.equal(memory.length, 3);
  // Wasm memory never shrinks: flat means epochs 2 and 3 find the room epoch 1 made.
  // A leak of one model's weights per epoch (0.9 MB at 28x28) would exceed this.
  assert.ok(memory[2] - memory[0] <= 2 ** 20, `memory grew from ${memory[0]} to ${memory[2]} bytes`);
  assert.deepEqual(problems, []);
  await page.close();
});
