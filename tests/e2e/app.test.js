// End-to-end tests of the page in headless Chromium: what a user does, checked on what they see.
// Needs the release build in dist/ (scripts/test.sh runs `trunk build --release` first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium, waitForRun } from './browser.js';
import { writeShapeFolders } from './images.js';

let server;
let browser;
let base;

before(async () => {
  server = await serveStatic(new URL('../../dist', import.meta.url).pathname);
  base = `http://127.0.0.1:${server.address().port}/`;
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
  await page.goto(`${base}index.html${query}`);
  return { page, problems };
}

test('the page loads and offers the MNIST digits', async () => {
  const { page, problems } = await openPage();
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.click('#use-mnist');
  await page.waitForSelector('.class-card');
  assert.equal(await page.locator('.class-card').count(), 10);
  assert.match(await page.locator('#dataset-summary').innerText(), /8000 training and 2000 test images/);
  assert.equal(await page.locator('#train').isDisabled(), false);
  assert.deepEqual(problems, []);
  await page.close();
});

test('MNIST trains on the CPU backend for one epoch, far above chance, and the page stays responsive', async () => {
  const { page, problems } = await openPage('?dataset=mnist&epochs=1&autostart=1&backend=cpu');
  await page.waitForFunction(() => document.body.dataset.state === 'training', null, { timeout: 60_000 });
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
  assert.ok(result.test_acc > 0.9, `test pair accuracy ${result.test_acc}`);
  assert.ok(result.auc > 0.95, `AUC ${result.auc}`);
  assert.match(await page.locator('#metrics').innerText(), /Test pair accuracy/);
  assert.equal(await page.locator('#gallery .pair').count(), 12);
  assert.deepEqual(problems, []);
  await page.close();
});

test('MNIST trains on WebGPU (a short run: the software GPU here is slow)', async () => {
  const { page, problems } = await openPage('?dataset=mnist&train_images=640&test_images=500&epochs=1&autostart=1&backend=webgpu');
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

test('a folder of the user\'s images trains, and a corrupt file is reported while the rest load', async () => {
  const root = mkdtempSync(join(tmpdir(), 'siamese-web-upload-'));
  const classes = writeShapeFolders(root, 24);
  writeFileSync(join(root, 'disc', 'broken.png'), 'this is text, not a picture');
  const { page, problems } = await openPage('?epochs=4&backend=cpu');
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.setInputFiles('#pick-folder', root);
  await page.waitForSelector('.class-card');
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
  // Comparing two test images with the trained model gives a distance.
  await page.click('#compare-random');
  await page.waitForSelector('#compare-result figcaption');
  assert.match(await page.locator('#compare-result').innerText(), /D = \d/);
  assert.deepEqual(problems, []);
  await page.close();
});
