// End-to-end tests of the page in headless Chromium: what a user does, checked on what they see.
// Needs the release build in dist/ (scripts/test.sh runs `trunk build --release` first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium, openPage, waitForRun } from './browser.js';
import { greyPng, writeShapeFolders } from './images.js';

let server;
let browser;
let base;

// The strictest policy the app needs: its own files only, no eval (wasm compiles under
// 'wasm-unsafe-eval'), no inline script or style. Every page and worker of these tests runs under it.
const STRICT_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
  "worker-src 'self'; connect-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'";
const DIST = new URL('../../dist', import.meta.url).pathname;

before(async () => {
  server = await serveStatic(DIST, { headers: { 'content-security-policy': STRICT_CSP } });
  base = `http://127.0.0.1:${server.address().port}/`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

const openApp = (query = '') => openPage(browser, `${base}index.html${query}`);

test('the page loads and offers the MNIST digits', async () => {
  const { page, problems } = await openApp();
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.click('#use-mnist');
  await page.waitForSelector('#dataset-summary .class-card');
  assert.equal(await page.locator('#dataset-summary .class-card').count(), 10);
  assert.match(await page.locator('#dataset-summary').innerText(), /8000 training and 2000 test images/);
  assert.equal(await page.locator('#train').isDisabled(), false);
  // The session's defaults fill the settings; none is held out.
  assert.equal(await page.locator('[name=epochs]').inputValue(), '10');
  assert.equal(await page.locator('[name=held_out_classes]').inputValue(), '');
  assert.deepEqual(problems, []);
  await page.close();
});

test('MNIST trains on the CPU backend for one epoch, far above chance, and the page stays responsive', async () => {
  const { page, problems } = await openApp('?dataset=mnist&epochs=1&autostart=1&backend=cpu');
  await page.waitForFunction(() => document.body.dataset.state === 'training', null, { timeout: 60_000 });
  // What a screen reader hears: each announcement, against the steps shown.
  await page.evaluate(() => {
    const heard = [];
    let steps = 0;
    const watch = (id, seen) => new MutationObserver(seen).observe(document.getElementById(id), { childList: true, characterData: true, subtree: true });
    watch('progress-announce', () => heard.push(document.getElementById('progress-announce').textContent));
    watch('progress-text', () => { steps += 1; });
    Object.assign(window, { announcements: () => ({ heard, steps }) });
  });
  await page.waitForFunction(() => /^Epoch 1\/1 · step/.test(document.getElementById('progress-text').innerText));
  assert.match(await page.locator('#progress').getAttribute('aria-valuetext'), /^Epoch 1 of 1, \d+ % done, about \d+:\d\d left$/);
  // While the worker trains, the page's own timers must fire on time.
  const lateness = await page.evaluate(() => new Promise((resolve) => {
    const late = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      late.push(now - last - 50);
      last = now;
      if (late.length === 100) {
        clearInterval(timer);
        resolve(Math.max(...late));
      }
    }, 50);
  }));
  assert.ok(lateness < 300, `a 50 ms timer fired ${lateness.toFixed(0)} ms late during training`);
  const run = await waitForRun(page, 600_000);
  assert.equal(run.state, 'done', run.messages);
  const result = JSON.parse(run.result);
  console.log('cpu', run.result);
  assert.equal(result.backend, 'cpu');
  assert.equal(result.epochs, 1);
  // The same test pairs as the command line's run of the digits (`siamese train --mnist`).
  assert.equal(result.test_pairs, 4000);
  assert.equal(result.threshold_source, 'validation');
  assert.ok(result.test_acc > 0.9, `test pair accuracy ${result.test_acc}`);
  assert.ok(result.auc > 0.95, `AUC ${result.auc}`);
  assert.match(await page.locator('#metrics').innerText(), /Test pair accuracy/);
  assert.equal(await page.locator('#gallery .pair').count(), 12);
  const { heard, steps } = await page.evaluate(() => /** @type {any} */ (window).announcements());
  assert.ok(steps > 50, `${steps} steps shown`);
  assert.equal(heard.length, 2, heard.join(' | '));
  assert.match(heard[0], /^Epoch 1 done: validation pair accuracy \d+\.\d+ %\.$/);
  // One worker per core (up to 8) by default, each with its share of every batch.
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.equal(result.workers, Math.min(cores, 8));
  const perWorker = result.workers > 1 ? `, ${result.workers} workers: \\d+ per worker` : '';
  assert.match(heard[1], new RegExp(`^Finished after 1 epoch\\(s\\) in [\\d.]+ s on the CPU \\(\\d+ pairs/s${perWorker}\\)\\. Test pair accuracy \\d+\\.\\d+ %\\.$`));
  assert.match(await page.locator('#progress').getAttribute('aria-valuetext'), /^Finished after 1 epoch/);
  assert.deepEqual(problems, []);
  await page.close();
});

test('two CPU workers take the same steps as one: the same losses, the figures of both', async () => {
  const train = async (workers) => {
    const { page, problems } = await openApp(`?dataset=mnist&train_images=640&test_images=500&epochs=1&autostart=1&backend=cpu&workers=${workers}`);
    const run = await waitForRun(page, 300_000);
    assert.equal(run.state, 'done', run.messages);
    const epoch = await page.locator('#epoch-status').innerText();
    const [, trainLoss, validationLoss] = epoch.match(/train loss ([\d.]+), validation loss ([\d.]+)/).map(Number);
    const reply = { result: JSON.parse(run.result), trainLoss, validationLoss, backend: await page.locator('#backend-status').innerText() };
    assert.deepEqual(problems, []);
    await page.close();
    return reply;
  };
  const one = await train(1);
  const two = await train(2);
  console.log('one worker', JSON.stringify(one), 'two workers', JSON.stringify(two));
  assert.equal(one.result.workers, 1);
  assert.equal(two.result.workers, 2);
  assert.match(two.backend, /2 workers, each with its share of every batch/);
  assert.doesNotMatch(one.backend, /workers/);
  // The shares' sums differ from the whole batch's in the last bits only (tests/learning.rs
  // follows the curve step by step).
  assert.ok(Math.abs(two.trainLoss - one.trainLoss) <= 2e-4, `train loss ${two.trainLoss} against ${one.trainLoss}`);
  assert.ok(Math.abs(two.validationLoss - one.validationLoss) <= 2e-4, `validation loss ${two.validationLoss} against ${one.validationLoss}`);
  assert.ok(Math.abs(two.result.test_acc - one.result.test_acc) <= 0.005, `test pair accuracy ${two.result.test_acc} against ${one.result.test_acc}`);
});

test('a deep link to WebGPU loads the full module; WebGPU chosen in the settings swaps the CPU-only one for it, and the digits train on WebGPU', async () => {
  const requests = [];
  const onRequest = (request) => requests.push(new URL(request.url()).pathname);
  browser.on('request', onRequest);
  const linked = await openApp('?backend=webgpu');
  await linked.page.waitForFunction(() => document.body.dataset.state === 'idle');
  assert.ok(requests.includes('/siamese-web_bg.wasm'), requests.join(' '));
  assert.ok(!requests.includes('/siamese-web-cpu_bg.wasm'), 'the deep link to WebGPU loaded the CPU-only module too');
  assert.deepEqual(linked.problems, []);
  await linked.page.close();

  // SwiftShader is a software adapter: without a choice the page takes the CPU-only module.
  requests.length = 0;
  const { page, problems } = await openApp('?dataset=mnist&train_images=640&test_images=500&epochs=1');
  await page.waitForFunction(() => document.body.dataset.state === 'idle' && /training and/.test(document.getElementById('dataset-summary').innerText));
  assert.ok(requests.includes('/siamese-web-cpu_bg.wasm'), requests.join(' '));
  assert.ok(!requests.includes('/siamese-web_bg.wasm'), 'a page without a real GPU loaded the WebGPU module');
  await page.selectOption('[name=backend]', 'webgpu');
  await page.waitForFunction(() => /Loading the WebGPU module/.test(document.getElementById('backend-status').innerText));
  // Train is enabled again once the fresh worker has the digits.
  await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 120_000 });
  browser.off('request', onRequest);
  assert.ok(requests.includes('/siamese-web_bg.wasm'), 'choosing WebGPU did not load the full module');
  assert.match(await page.locator('#dataset-summary').innerText(), /639 training and 501 test images/);
  await page.click('#train');
  const run = await waitForRun(page, 480_000);
  assert.equal(run.state, 'done', run.messages);
  const result = JSON.parse(run.result);
  console.log('webgpu', run.result);
  assert.equal(result.backend, 'webgpu');
  assert.ok(result.test_acc > 0.7, `test pair accuracy ${result.test_acc}`);
  assert.match(await page.locator('#backend-status').innerText(), /WebGPU/);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a folder of the user\'s images trains without a request beyond the app\'s files, and a corrupt file is reported while the rest load', async () => {
  const root = mkdtempSync(join(tmpdir(), 'siamese-web-upload-'));
  const classes = writeShapeFolders(root, 24);
  writeFileSync(join(root, 'disc', 'broken.png'), 'this is text, not a picture');
  // Privacy: from opening the page to the end of training, every request is for the app's own files.
  const requests = [];
  const onRequest = (request) => requests.push(request.url());
  browser.on('request', onRequest);
  const { page, problems } = await openApp('?epochs=4&backend=cpu');
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.selectOption('#image-size', '3,64,64');
  await page.setInputFiles('#pick-folder', root);
  await page.waitForFunction(() => /training and/.test(document.getElementById('dataset-summary').innerText));
  const names = await page.locator('.class-card figcaption').allInnerTexts();
  assert.deepEqual(names.map((n) => n.split(' ')[0]).sort(), [...classes].sort());
  assert.match(await page.locator('#dataset-summary').innerText(), /57 training and 15 test images/);
  assert.match(await page.locator('#messages').innerText(), /broken\.png: not an image/);
  await page.click('#train');
  const run = await waitForRun(page, 300_000);
  assert.equal(run.state, 'done', run.messages);
  const result = JSON.parse(run.result);
  console.log('upload', run.result);
  assert.ok(result.test_acc_best > 0.8, `test pair accuracy ${result.test_acc_best}`);
  browser.off('request', onRequest);
  // The page's own object URLs (thumbnails of the user's files) are read in the browser, not sent.
  const local = (url) => url.startsWith(`blob:${new URL(base).origin}/`);
  const foreign = requests.filter((url) => !local(url) && (!url.startsWith(base) || !existsSync(join(DIST, new URL(url).pathname))));
  assert.deepEqual(foreign, [], 'requests for anything but the app\'s own files');
  assert.ok(requests.some((url) => url.endsWith('/siamese-web-cpu_bg.wasm')), 'the worker\'s requests were not seen');
  // Comparing two test images with the trained model gives a distance.
  await page.click('#compare-random');
  await page.waitForSelector('#compare-result figcaption');
  assert.match(await page.locator('#compare-result').innerText(), /D = \d/);

  // That 64x64 RGB model cannot serve 28x28 digits: loading it over them is refused, kept model or not.
  await page.waitForFunction(() => /64×64 RGB/.test(document.querySelector('#saved-models li')?.innerText));
  await page.click('#use-mnist');
  await page.waitForFunction(() => /MNIST digits: 8000 training/.test(document.getElementById('dataset-summary').innerText));
  await page.locator('#saved-models li button', { hasText: 'Load' }).first().click();
  await page.waitForFunction(() => /trained for 64x64 RGB images, but the loaded data is 28x28 grey/.test(document.getElementById('messages').innerText));
  assert.deepEqual(problems, []);
  await page.close();

  // Opened again on the digits, the page neither restores the newest kept model (it cannot
  // serve them) nor reports an error, whichever of it and the digits comes first.
  const again = await openApp('?dataset=mnist&train_images=300&test_images=100');
  await again.page.waitForFunction(() => /MNIST digits: \d+ training/.test(document.getElementById('dataset-summary').innerText));
  await again.page.waitForFunction(() => /64×64 RGB/.test(document.querySelector('#saved-models li')?.innerText));
  assert.equal(await again.page.locator('#model-status').getAttribute('data-loaded'), null);
  assert.equal(await again.page.evaluate(() => document.body.dataset.state), 'idle');
  assert.deepEqual(again.problems, []);
  await again.page.close();
});

test('classes recorded from the camera are renamed, pruned and deleted, the data follows each change, and a refused camera leaves the page working', async () => {
  // A browser of its own: nothing kept from other tests' classes.
  const ownBrowser = await launchChromium();
  try {
    await cameraClasses(ownBrowser);
  } finally {
    await ownBrowser.close();
  }
});

async function cameraClasses(ownBrowser) {
  const { page, problems } = await openPage(ownBrowser, `${base}index.html?epochs=1&backend=cpu`);
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.click('#camera-start');
  await page.waitForFunction(() => !document.getElementById('camera-record').disabled);
  assert.ok(await page.evaluate(() => document.getElementById('camera-video').videoWidth > 0), 'no preview');

  // Held with the mouse, then with Space: each hold's frames join the class named.
  const record = page.locator('#camera-record');
  await page.fill('#camera-class', 'wave');
  await record.hover();
  await page.mouse.down();
  await page.waitForTimeout(1500);
  await page.mouse.up();
  await page.waitForFunction(() => /^wave: \d+ images \(\d+ new\)$/.test(document.getElementById('camera-count').innerText));
  await page.fill('#camera-class', 'still');
  await record.focus();
  await page.keyboard.down('Space');
  await page.waitForTimeout(1500);
  await page.keyboard.up('Space');
  // The count moves with each frame; "(N new)" once the hold's frames have joined the class.
  await page.waitForFunction(() => /^still: \d+ images \(\d+ new\)$/.test(document.getElementById('camera-count').innerText));

  const cards = async () => Object.fromEntries((await page.locator('.own-class figcaption').allInnerTexts())
    .map((text) => /^(.+) \((\d+)\)$/.exec(text).slice(1, 3)).map(([name, n]) => [name, Number(n)]));
  /** The session's own count of the images it decoded, once it matches the cards'. */
  const sessionImages = async (total) => {
    await page.waitForFunction((n) => {
      const m = /(\d+) training and (\d+) test images, (\d+) classes/.exec(document.getElementById('dataset-summary').innerText);
      return m && Number(m[1]) + Number(m[2]) === n;
    }, total);
    return page.locator('#dataset-summary').innerText();
  };
  const recorded = await cards();
  assert.deepEqual(Object.keys(recorded), ['wave', 'still']);
  assert.ok(recorded.wave >= 6 && recorded.still >= 6, JSON.stringify(recorded));
  assert.match(await sessionImages(recorded.wave + recorded.still), /2 classes, 28×28 grey/);

  // Files picked join the recorded classes; a second pick replaces the first pick's files only.
  const shapes = mkdtempSync(join(tmpdir(), 'siamese-web-shapes-'));
  writeShapeFolders(shapes, 3, { flat: true });
  const shape = (name) => [0, 1, 2].map((i) => join(shapes, `${name}_${i}.png`));
  await page.setInputFiles('#pick-files', [...shape('rows'), ...shape('disc')]);
  assert.deepEqual(await cards(), { wave: recorded.wave, still: recorded.still, rows: 3, disc: 3 });
  await page.setInputFiles('#pick-files', shape('columns'));
  assert.deepEqual(await cards(), { wave: recorded.wave, still: recorded.still, columns: 3 });
  await page.setInputFiles('.own-class[data-name="columns"] input[type="file"]', shape('disc').slice(0, 1));
  assert.deepEqual(await cards(), { wave: recorded.wave, still: recorded.still, columns: 4 });
  await sessionImages(recorded.wave + recorded.still + 4);
  await page.locator('.own-class[data-name="columns"] .delete').click();
  assert.match(await sessionImages(recorded.wave + recorded.still), /2 classes/);

  // Trained, then changed: the model is marked out of date.
  await page.click('#train');
  const run = await waitForRun(page, 300_000);
  assert.equal(run.state, 'done', run.messages);
  assert.equal(await page.locator('#data-changed').isHidden(), true);

  await page.locator('.own-class[data-name="wave"] .rename').click();
  await page.fill('.own-class[data-name="wave"] figcaption input', 'still');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /not renamed: there is a class "still" already/.test(document.getElementById('messages').innerText));
  await page.fill('.own-class[data-name="wave"] figcaption input', 'moving');
  await page.keyboard.press('Enter');
  // The cards are drawn again after the rename: a click before that lands on a card replaced.
  await page.waitForSelector('.own-class[data-name="moving"]');
  await page.locator('.own-class[data-name="still"] .remove').first().click();
  await page.waitForFunction((n) => document.querySelectorAll('.own-class[data-name="still"] .remove').length === n, recorded.still - 1);
  assert.deepEqual(await cards(), { moving: recorded.wave, still: recorded.still - 1 });
  await sessionImages(recorded.wave + recorded.still - 1);
  assert.equal(await page.locator('#data-changed').isVisible(), true);

  // The digits for a while: the classes wait, and come back as the data with one press.
  await page.click('#use-mnist');
  await page.waitForFunction(() => /MNIST digits/.test(document.getElementById('dataset-summary').innerText));
  await page.click('#use-own-images');
  await sessionImages(recorded.wave + recorded.still - 1);
  await page.locator('.own-class[data-name="moving"] .delete').click();
  assert.deepEqual(await cards(), { still: recorded.still - 1 });
  await sessionImages(recorded.still - 1);
  assert.match(await page.locator('#messages').innerText(), /cannot train yet: all images are of one class \(still\)/);
  assert.equal(await page.locator('#train').isDisabled(), true);
  await page.click('#camera-stop');
  assert.equal(await page.locator('#camera-record').isDisabled(), true);
  assert.deepEqual(problems, []);
  await page.close();

  // A camera refused by the user: a clear message, and the digits still train.
  const refused = await ownBrowser.newPage();
  await refused.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  await refused.goto(`${base}index.html?dataset=mnist&train_images=300&test_images=100&epochs=1&backend=cpu`);
  await refused.click('#camera-start');
  await refused.waitForFunction(() => /camera was not allowed: allow it in the browser's site settings/.test(document.getElementById('messages').innerText));
  assert.equal(await refused.locator('#camera-record').isDisabled(), true);
  await refused.waitForFunction(() => !document.getElementById('train').disabled);
  await refused.click('#train');
  assert.equal((await waitForRun(refused, 300_000)).state, 'done');
  await refused.close();
}

test('held-out digits are called none of the above, the distance is chosen, classes are enrolled; the map over time, the projector export and the hardest pairs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'siamese-web-enrol-'));
  const rings = [6, 8, 10].map((radius) => {
    const path = join(dir, `ring-${radius}.png`);
    writeFileSync(path, greyPng(28, 28, (x, y) => (Math.abs(Math.hypot(x - 14, y - 14) - radius) < 1.5 ? 255 : 0)));
    return path;
  });
  // A browser of its own, for a list of kept models of its own.
  const ownBrowser = await launchChromium();
  try {
    await heldOutDigits(ownBrowser, dir, rings);
  } finally {
    await ownBrowser.close();
  }
});

async function heldOutDigits(ownBrowser, dir, rings) {
  const { page, problems } = await openPage(ownBrowser,
    `${base}index.html?dataset=mnist&train_images=1500&test_images=500&epochs=1&autostart=1&backend=cpu&held_out_classes=8,9`);
  await page.waitForFunction(() => document.querySelector('[name=held_out_classes]').value === '8,9');
  const run = await waitForRun(page, 300_000);
  assert.equal(run.state, 'done', run.messages);
  const openSet = () => page.locator('#open-set').getAttribute('data-result').then((text) => JSON.parse(text));
  await page.waitForSelector('#open-set[data-result]', { timeout: 120_000 });
  const first = await openSet();
  console.log('open set', JSON.stringify(first));
  assert.equal(first.unknowns, 'held_out');
  assert.deepEqual(first.classes, ['0', '1', '2', '3', '4', '5', '6', '7']);
  assert.ok(first.eer < 0.5, `EER ${first.eer}`);
  assert.match(await page.locator('#open-set').innerText(), /test images of 8, 9, held out of training/);
  // Test pair figures are on the trained digits' pairs only.
  assert.ok(JSON.parse(run.result).test_pairs < 1000, run.result);

  // The map over time: before training and after the one epoch, on fixed axes.
  const scrubber = page.locator('#map-epoch');
  assert.equal(await scrubber.getAttribute('max'), '1');
  assert.match(await page.locator('#map-epoch-value').innerText(), /after epoch 1/);
  const axes = () => page.locator('#map-chart').getAttribute('data-axes');
  const finalAxes = await axes();
  await scrubber.evaluate((el) => {
    el.value = '0';
    el.dispatchEvent(new Event('input'));
  });
  assert.match(await page.locator('#map-epoch-value').innerText(), /before training/);
  assert.ok(finalAxes);
  assert.equal(await axes(), finalAxes);

  // The embeddings for the Embedding Projector: one zip of its four files.
  const [archive] = await Promise.all([page.waitForEvent('download'), page.click('#export-projector')]);
  assert.equal(archive.suggestedFilename(), 'siamese-web-projector.zip');
  const zipPath = join(dir, archive.suggestedFilename());
  await archive.saveAs(zipPath);
  const zip = readFileSync(zipPath);
  assert.equal(zip.subarray(0, 4).toString('latin1'), 'PK\x03\x04');
  for (const name of ['vectors.tsv', 'metadata.tsv', 'sprite.png', 'projector_config.json']) {
    assert.ok(zip.includes(name), `${name} is not in the archive`);
  }

  // The slider: at 0 every image is none of the above; the session's answer says so.
  const slider = page.locator('#unknown-distance');
  assert.equal(await slider.isDisabled(), false);
  await slider.evaluate((el) => {
    el.value = '0';
    el.dispatchEvent(new Event('input'));
    el.dispatchEvent(new Event('change'));
  });
  await page.waitForFunction(() => JSON.parse(document.getElementById('open-set').dataset.result).chosen.distance === 0);
  const strict = await openSet();
  assert.deepEqual([strict.chosen.far, strict.chosen.frr], [0, 1]);
  assert.match(await page.locator('#unknown-distance-rates').innerText(), /known images rejected 100/);
  await page.click('#neighbour-random');
  await page.waitForSelector('#neighbours .query figcaption');
  assert.match(await page.locator('#neighbours .query figcaption').innerText(), /recognised as none of the above/);

  // Enrolled from five training images each, 8 and 9 join the classes.
  await page.click('#enrol-held-out');
  await page.waitForFunction(() => JSON.parse(document.getElementById('open-set').dataset.result).enrolled_acc != null);
  const enrolled = await openSet();
  assert.equal(enrolled.classes.length, 10);
  assert.equal(enrolled.unknowns, 'leave_one_class_out');
  assert.ok(enrolled.enrolled_acc > 0.3, `enrolled accuracy ${enrolled.enrolled_acc}`);
  assert.equal(await page.locator('#enrol-held-out').isDisabled(), true);
  // And a class of the user's own, from three files.
  await page.fill('#enrol-name', 'rings');
  await page.setInputFiles('#enrol-files', rings);
  await page.click('#enrol');
  await page.waitForFunction(() => JSON.parse(document.getElementById('open-set').dataset.result).classes.includes('rings'));
  assert.match(await page.locator('#open-set').innerText(), /rings \(3 images\)/);

  // The hardest pairs: six of each kind, with their classes and distances.
  assert.equal(await page.locator('#closest-dissimilar .pair').count(), 6);
  assert.equal(await page.locator('#farthest-similar .pair').count(), 6);
  const [closest] = await page.locator('#closest-dissimilar figcaption').allInnerTexts();
  const [a, b] = closest.split(' · ');
  assert.notEqual(a, b, closest);

  // Kept in the browser as it is now: after a reload the enrolled classes and the distance are back.
  await page.waitForFunction(() => /rings/.test(document.getElementById('model-status').dataset.kept));
  assert.equal(await page.locator('#saved-models li').count(), 1);
  await page.goto(`${base}index.html?dataset=mnist&train_images=1500&test_images=500`);
  await page.waitForSelector('#open-set[data-result]', { timeout: 120_000 });
  const restored = await openSet();
  assert.ok(restored.classes.includes('rings') && restored.classes.length === 11, JSON.stringify(restored));
  assert.equal(restored.chosen.distance, 0);
  assert.deepEqual(problems, []);
}

test('the whole project (classes, recorded images, settings, model) is kept across a reload, downloaded, refused when broken, and loaded in another browser', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'siamese-web-project-'));
  writeShapeFolders(dir, 6, { flat: true });
  const shapes = ['rows', 'disc'].flatMap((name) => [0, 1, 2, 3, 4, 5].map((i) => join(dir, `${name}_${i}.png`)));
  // A photo-sized image is kept shrunk to 224 pixels on its long side.
  writeFileSync(join(dir, 'rows_large.png'), greyPng(640, 480, (x, y) => ((x >> 4) + (y >> 4)) % 2 * 255));
  shapes.push(join(dir, 'rows_large.png'));
  const first = await launchChromium();
  const second = await launchChromium();
  try {
    const page = await first.newPage();
    await page.goto(`${base}index.html?epochs=1&backend=cpu`);
    await page.waitForFunction(() => document.body.dataset.state === 'idle');
    await page.setInputFiles('#pick-files', shapes);
    await page.click('#camera-start');
    await page.waitForFunction(() => !document.getElementById('camera-record').disabled);
    await page.fill('#camera-class', 'wave');
    await page.locator('#camera-record').hover();
    await page.mouse.down();
    await page.waitForTimeout(1000);
    await page.mouse.up();
    await page.fill('#settings [name="margin"]', '1.5');
    await page.locator('#settings [name="margin"]').dispatchEvent('change');
    const cards = () => page.locator('.own-class figcaption').allInnerTexts();
    await page.waitForFunction(() => /^wave: /.test(document.getElementById('camera-count').innerText));
    const before = await cards();
    assert.equal(before.length, 3, before.join());
    await page.waitForFunction(() => /training and \d+ test images, 3 classes/.test(document.getElementById('dataset-summary').innerText));
    await page.click('#train');
    assert.equal((await waitForRun(page, 300_000)).state, 'done');
    await page.waitForFunction(() => /kept in this browser · [\d.]+ MB used of/.test(document.getElementById('project-status').innerText));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-project')]);
    const projectPath = join(dir, download.suggestedFilename());
    await download.saveAs(projectPath);
    assert.equal(download.suggestedFilename(), 'siamese-project.siamese-project');
    assert.match(await page.locator('#project-file-status').innerText(), /^Downloaded the project: \d+ images in 3 classes and the model/);

    // A reload (no settings in the address): the classes, the recorded images, the setting and the model are back.
    await page.goto(`${base}index.html`);
    await page.waitForFunction(() => /from the last visit are back/.test(document.getElementById('project-status').innerText));
    assert.deepEqual(await cards(), before);
    await page.waitForFunction(() => document.querySelector('img[alt="rows_large.png"]')?.complete);
    assert.deepEqual(await page.locator('img[alt="rows_large.png"]').evaluate((img) => [img.naturalWidth, img.naturalHeight]), [224, 168]);
    await page.waitForFunction(() => /3 classes/.test(document.getElementById('dataset-summary').innerText));
    await page.waitForFunction(() => document.getElementById('settings').elements.margin.value === '1.5');
    await page.waitForFunction(() => /^Loaded /.test(document.getElementById('model-status').innerText));
    // The model knows the kept images for the ones it trained on, the shrunk photo too (it keeps
    // the key of the image it was made from): nothing is out of date, nothing left out.
    await page.waitForSelector('#analysis table');
    assert.equal(await page.locator('#analysis p').getAttribute('data-seen-left-out'), '0');
    assert.equal(await page.locator('#data-changed').isHidden(), true);

    // Files that are not a project of this version are refused, and nothing changes.
    const bytes = readFileSync(projectPath);
    const headerLength = bytes.readUInt32LE(16);
    const header = JSON.parse(bytes.subarray(20, 20 + headerLength).toString());
    const newer = Buffer.from(JSON.stringify({ ...header, version: 2 }));
    const lengthField = Buffer.alloc(4);
    lengthField.writeUInt32LE(newer.length);
    const refusals = [
      ['notes.siamese-project', Buffer.from('a text file'), /notes\.siamese-project was not loaded: this is not a siamese-web project file\. Your current classes, settings and model stay\./],
      ['cut.siamese-project', bytes.subarray(0, bytes.length - 100), /cut\.siamese-project was not loaded: the project file is cut short/],
      ['newer.siamese-project', Buffer.concat([bytes.subarray(0, 16), lengthField, newer, bytes.subarray(20 + headerLength)]),
        /newer\.siamese-project was not loaded: it is a project of version 2, and this page reads version 1: open it with a newer siamese-web/],
    ];
    for (const [name, content, message] of refusals) {
      writeFileSync(join(dir, name), content);
      await page.setInputFiles('#load-project', join(dir, name));
      await page.waitForFunction((source) => new RegExp(source).test(document.getElementById('messages').innerText), message.source);
    }
    assert.deepEqual(await cards(), before);
    assert.equal(await page.locator('#settings [name="margin"]').inputValue(), '1.5');
    await page.close();

    // In another browser, the file brings back all of it.
    const other = await second.newPage();
    await other.goto(`${base}index.html`);
    await other.waitForFunction(() => document.body.dataset.state === 'idle');
    await other.setInputFiles('#load-project', projectPath);
    await other.waitForFunction(() => /^Loaded siamese-project\.siamese-project: \d+ images in 3 classes and its model/.test(document.getElementById('project-file-status').innerText));
    assert.deepEqual(await other.locator('.own-class figcaption').allInnerTexts(), before);
    assert.equal(await other.locator('#settings [name="margin"]').inputValue(), '1.5');
    await other.waitForFunction(() => /^Loaded /.test(document.getElementById('model-status').innerText));
    await other.waitForFunction(() => /3 classes/.test(document.getElementById('dataset-summary').innerText));
    await other.waitForSelector('#analysis table');
    assert.equal(await other.locator('#data-changed').isHidden(), true);
  } finally {
    await first.close();
    await second.close();
  }
});

test('a model is used, kept, downloaded, restored after a reload, and bad model files are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'siamese-web-model-'));
  const [left, right] = [join(dir, 'ring.png'), join(dir, 'bar.png')];
  writeFileSync(left, greyPng(28, 28, (x, y) => (Math.abs(Math.hypot(x - 14, y - 14) - 8) < 2 ? 255 : 0)));
  writeFileSync(right, greyPng(28, 28, (x) => (Math.abs(x - 14) < 2 ? 255 : 0)));
  const compareFiles = async (page) => {
    await page.locator('#compare-result').evaluate((el) => el.replaceChildren());
    await page.setInputFiles('#compare-left', left);
    await page.setInputFiles('#compare-right', right);
    await page.click('#compare');
    await page.waitForSelector('#compare-result figcaption');
    return page.locator('#compare-result figcaption').innerText();
  };

  // A browser of its own: what other tests kept in theirs must not matter here.
  const ownBrowser = await launchChromium();
  try {
    const { page, problems } = await openPage(ownBrowser, `${base}index.html?dataset=mnist&train_images=1500&test_images=500&epochs=1&autostart=1&backend=cpu`);
    const run = await waitForRun(page, 300_000);
    assert.equal(run.state, 'done', run.messages);

    // Classification by the embeddings, far above chance (0.1 for ten digits).
    await page.waitForSelector('#analysis[data-result]', { timeout: 120_000 });
    const analysis = JSON.parse(await page.locator('#analysis').getAttribute('data-result'));
    console.log('analysis', JSON.stringify(analysis));
    assert.equal(analysis.one_shot_ways, 10);
    assert.ok(analysis.knn_acc > 0.6, `k-NN accuracy ${analysis.knn_acc}`);
    assert.ok(analysis.one_shot_acc > 0.3, `one-shot accuracy ${analysis.one_shot_acc}`);

    // The embedding map is drawn, and pointing at a dot shows its image.
    await page.locator('#map-chart').scrollIntoViewIfNeeded();
    const box = await page.locator('#map-chart').boundingBox();
    let shown = false;
    for (let i = 0; i < 20 && !shown; i++) {
      await page.mouse.move(box.x + box.width * (0.1 + 0.8 * ((i * 0.618) % 1)), box.y + box.height * (0.15 + 0.7 * ((i * 0.382) % 1)));
      shown = (await page.locator('#map-hover canvas').count()) > 0;
    }
    assert.ok(shown, 'no dot of the embedding map showed its image');
    assert.match(await page.locator('#map-hover figcaption').innerText(), /^\d$/);

    // Nearest neighbours of a test image: eight, nearest first.
    await page.click('#neighbour-random');
    await page.waitForSelector('#neighbours .neighbour');
    const neighbours = await page.locator('#neighbours .neighbour figcaption').allInnerTexts();
    assert.equal(neighbours.length, 8);
    const distances = neighbours.map((text) => Number(text.match(/D = ([\d.]+)/)[1]));
    assert.deepEqual([...distances].sort((a, b) => a - b), distances);
    assert.match(await page.locator('#neighbours .query figcaption').innerText(), /looks like "\d"/);
    // A query from a file of the user's.
    await page.locator('#neighbours').evaluate((el) => el.replaceChildren());
    await page.setInputFiles('#neighbour-file', left);
    await page.waitForFunction(() => document.querySelectorAll('#neighbours .neighbour').length === 8);

    // Kept in the browser, and downloadable.
    await page.waitForSelector('#saved-models li');
    const before = await compareFiles(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-model')]);
    const modelPath = join(dir, download.suggestedFilename());
    await download.saveAs(modelPath);
    assert.match(download.suggestedFilename(), /^siamese-mnist-digits-1ep\.siamese$/);
    const bytes = readFileSync(modelPath);
    assert.ok(bytes.length > 500_000, `a model file of ${bytes.length} bytes`);

    // Files that are not whole models of ours are refused; the current model stays.
    const status = await page.locator('#model-status').innerText();
    const text = join(dir, 'notes.siamese');
    writeFileSync(text, 'not a model at all');
    const cut = join(dir, 'cut.siamese');
    writeFileSync(cut, bytes.subarray(0, bytes.length / 2));
    await page.setInputFiles('#load-model', text);
    await page.waitForFunction(() => /notes\.siamese: this is not a siamese-web model file/.test(document.getElementById('messages').innerText));
    await page.setInputFiles('#load-model', cut);
    await page.waitForFunction(() => /cut\.siamese: the model file is cut short/.test(document.getElementById('messages').innerText));
    assert.equal(await page.locator('#model-status').innerText(), status);
    assert.equal(await compareFiles(page), before);

    // Opened again (without autostart, which would train anew) the page restores the newest kept
    // model; the downloaded file loads with identical distances.
    await page.goto(`${base}index.html?dataset=mnist&train_images=1500&test_images=500&backend=cpu`);
    await page.waitForFunction(() => /^Loaded siamese-mnist-digits-1ep/.test(document.getElementById('model-status').innerText));
    assert.equal(await compareFiles(page), before);
    await page.setInputFiles('#load-model', modelPath);
    await page.waitForFunction((name) => document.getElementById('model-status').dataset.loaded === name, download.suggestedFilename());
    assert.equal(await compareFiles(page), before);
    assert.deepEqual(problems, []);
  } finally {
    await ownBrowser.close();
  }
});

/** The page's split list, downloaded: `class/file` -> part. */
async function downloadedSplit(page) {
  await page.waitForFunction(() => !document.getElementById('download-split').disabled);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-split')]);
  const [, ...lines] = readFileSync(await download.path(), 'utf8').trim().split('\n');
  return new Map(lines.map((line) => line.split('\t')).map(([path, , part]) => [path, part]));
}

test('after the data changes, the model\'s figures leave out the images it trained on and say so, after a reload too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'siamese-web-changed-'));
  writeShapeFolders(dir, 16, { flat: true });
  const more = mkdtempSync(join(tmpdir(), 'siamese-web-more-'));
  writeShapeFolders(more, 26, { flat: true });
  const own = await launchChromium();
  try {
    const page = await own.newPage();
    await page.goto(`${base}index.html?epochs=1&backend=cpu`);
    await page.waitForFunction(() => document.body.dataset.state === 'idle');
    const shapes = ['rows', 'columns', 'disc'].flatMap((name) => [...Array(16).keys()].map((i) => join(dir, `${name}_${i}.png`)));
    await page.setInputFiles('#pick-files', shapes);
    await page.waitForFunction(() => /training and \d+ test images, 3 classes/.test(document.getElementById('dataset-summary').innerText));
    await page.click('#train');
    assert.equal((await waitForRun(page, 300_000)).state, 'done');
    await page.waitForFunction(() => /^On \d+ test images\.$/.test(document.querySelector('#analysis p')?.innerText));
    const before = await downloadedSplit(page);
    assert.equal(before.size, 48);

    // Ten new images, a copy of a training image under another name, and a test image of disc
    // removed: disc's share stays 3 of its now 15 images, so the next of its training images in
    // rank becomes a test image, one the model trained on.
    const trained = [...before].find(([path, part]) => path.startsWith('rows/') && part === 'train')[0];
    copyFileSync(join(dir, trained.slice('rows/'.length)), join(more, 'rows_copy.png'));
    const added = [...[...Array(10).keys()].map((i) => join(more, `rows_${16 + i}.png`)), join(more, 'rows_copy.png')];
    await page.setInputFiles('.own-class[data-name="rows"] input[type="file"]', added);
    await page.waitForFunction(() => /\(59 files\)/.test(document.getElementById('dataset-summary').innerText));
    const removed = [...before].find(([path, part]) => path.startsWith('disc/') && part === 'test')[0];
    await page.locator('#analysis').evaluate((el) => el.replaceChildren());
    await page.click(`[aria-label="Remove ${removed.slice('disc/'.length)} from disc"]`);
    await page.waitForFunction(() => /\(58 files\)/.test(document.getElementById('dataset-summary').innerText));
    await page.waitForSelector('#analysis table');
    assert.equal(await page.locator('#data-changed').isHidden(), false);
    const after = await downloadedSplit(page);
    assert.equal(after.size, 58);
    assert.equal(after.get('rows/rows_copy.png'), after.get(trained));
    // No image the model trained or validated on is a test image of its figures.
    for (const [path, part] of before) {
      if (part !== 'test') assert.notEqual(after.get(path), 'test', `${path} was ${part}`);
    }
    const seen = [...after.values()].filter((part) => part === 'seen').length;
    assert.ok(seen >= 1, 'the edit moved no training image into the test part');
    const caption = await page.locator('#analysis p').innerText();
    assert.ok(caption.includes(`(${seen} test images the model trained on were left out)`), caption);

    // After a reload, the kept model and the kept classes say the same.
    await page.waitForFunction(() => /^Your 58 images and settings are kept/.test(document.getElementById('project-status').innerText));
    await page.goto(`${base}index.html`);
    await page.waitForFunction(() => /from the last visit are back/.test(document.getElementById('project-status').innerText));
    await page.waitForFunction(() => /^Loaded /.test(document.getElementById('model-status').innerText));
    await page.waitForFunction(() => !document.getElementById('data-changed').hidden);
    await page.waitForSelector('#analysis table');
    assert.equal(await page.locator('#analysis p').innerText(), caption);
    assert.deepEqual(await downloadedSplit(page), after);
    await page.close();
  } finally {
    await own.close();
  }
});
