// The embeddable widget as a blog uses it: the example article (www/article.html) with the built
// files copied into a sub-folder of a static server, two widgets training at once, the blog's
// own text and styles untouched, a blocked .wasm reported in place, and a widget far down a
// post that loads nothing until the reader gets there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium } from './browser.js';
import { writeShapeFolders } from './images.js';

const FOLDER = 'blog/2026/siamese-demo';
let browser;
let root;
let server;
let blockingServer;
let cdn;
const requests = [];

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'siamese-web-site-'));
  cpSync(new URL('../../dist', import.meta.url).pathname, join(root, FOLDER), { recursive: true });
  server = await serveStatic(root, { log: (path) => requests.push(path) });
  blockingServer = await serveStatic(root, { refuse: (path) => path.endsWith('.wasm') });
  cdn = await serveStatic(root, { headers: { 'access-control-allow-origin': '*' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const s of [server, blockingServer, cdn]) s?.close();
});

const articleUrl = (server) => `http://127.0.0.1:${server.address().port}/${FOLDER}/www/article.html`;

/** Opens the article; `quick` puts shorter runs first in each widget's attributes (the first of
 * a repeated attribute wins), so CI trains for seconds instead of minutes. */
async function openArticle(url, { quick = false } = {}) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  if (quick) {
    await page.route('**/article.html', async (route) => {
      const response = await route.fetch();
      const html = (await response.text()).replaceAll('<siamese-trainer ', '<siamese-trainer epochs="1" train-images="1500" test-images="500" ');
      await route.fulfill({ response, body: html });
    });
  }
  await page.goto(url);
  return { page, problems };
}

const widgetStates = (page) => page.$$eval('siamese-trainer', (widgets) => widgets.map((w) => w.dataset.state));

/** Scrolls to each widget in turn, as a reader would, until each has started (a widget waits
 * for the viewport before it loads anything). */
async function reachWidgets(page) {
  for (const widget of await page.$$('siamese-trainer')) {
    await widget.scrollIntoViewIfNeeded();
    await page.waitForFunction((w) => w.dataset.state !== 'waiting', widget);
  }
}

test('two widgets in the article, served from a sub-folder, train at once; the blog stays as it was', async () => {
  const { page, problems } = await openArticle(articleUrl(server), { quick: true });
  await reachWidgets(page);
  await page.waitForFunction(() => [...document.querySelectorAll('siamese-trainer')].every((w) => w.dataset.state === 'idle'), null, { timeout: 120_000 });

  // The blog's styles reach neither into the widgets nor are they changed by them.
  const styles = await page.evaluate(() => {
    const style = (el) => getComputedStyle(el);
    const intro = document.getElementById('intro');
    const train = document.querySelector('#first').shadowRoot.querySelector('[data-ref="train"]');
    return {
      introFont: style(intro).fontFamily, introColor: style(intro).color, introSize: style(intro).fontSize,
      widgetFont: style(train).fontFamily, widgetButton: style(train).backgroundColor,
      globalChart: typeof globalThis.Chart, headStyles: document.querySelectorAll('head style, head link[rel=stylesheet]').length,
      width: document.querySelector('#first').getBoundingClientRect().width,
    };
  });
  assert.match(styles.introFont, /Georgia/);
  assert.equal(styles.introColor, 'rgb(34, 34, 34)');
  assert.equal(styles.introSize, '18px');
  assert.doesNotMatch(styles.widgetFont, /Georgia/);
  assert.equal(styles.widgetButton, 'rgb(37, 99, 235)', 'the blog\'s button colour leaked into the widget');
  assert.equal(styles.globalChart, 'undefined', 'Chart.js leaked a global into the page');
  assert.equal(styles.headStyles, 1, 'the widget added styles to the page');
  assert.ok(styles.width <= 700, `the widget is ${styles.width} px wide in a 700 px column`);
  assert.match(await page.locator('#first .status').innerText(), /CPU/);

  // Both train at once, each in its own worker.
  await page.locator('#first [data-ref="train"]').click();
  await page.locator('#second [data-ref="train"]').click();
  assert.deepEqual(await widgetStates(page), ['training', 'training']);
  await page.waitForFunction(() => [...document.querySelectorAll('siamese-trainer')].every((w) => ['done', 'error'].includes(w.dataset.state)), null, { timeout: 300_000, polling: 500 });
  const results = await page.$$eval('siamese-trainer', (widgets) => widgets.map((w) => ({ state: w.dataset.state, result: w.result, error: w.shadowRoot.querySelector('.error').textContent })));
  for (const { state, result, error } of results) {
    assert.equal(state, 'done', error);
    console.log('widget', JSON.stringify(result));
    assert.equal(result.epochs, 1);
    assert.equal(result.backend, 'cpu', 'Auto should skip the software WebGPU adapter');
    assert.ok(result.test_acc_best > 0.8, `test pair accuracy ${result.test_acc_best}`);
    assert.ok(result.auc > 0.9, `AUC ${result.auc}`);
  }
  assert.match(await page.locator('#first .metrics').innerText(), /Test pair accuracy \d+\.\d+ %/);
  // The progress bar's spoken value and the announcer: the end, not the steps.
  assert.match(await page.locator('#first progress').getAttribute('aria-valuetext'), /^Done: 1 epoch\(s\) in \d+ s on the CPU\.$/);
  assert.match(await page.locator('#first [data-ref="announce"]').innerText(), /^Done: 1 epoch/);
  assert.equal(await page.locator('#first .pair').count(), 4);
  assert.equal(await page.locator('#second .pair').count(), 8);
  assert.ok(await page.locator('#second [data-ref="histogramBox"]').isVisible(), 'the full layout draws the histogram');

  // Scrolled away and back, a widget still shows its run.
  const metrics = await page.locator('#first .metrics').innerText();
  await page.locator('#outro').scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollTo(0, 0));
  assert.equal(await page.locator('#first .metrics').innerText(), metrics);

  // On a phone the article does not scroll sideways.
  await page.setViewportSize({ width: 375, height: 800 });
  // The charts follow the new width on their next resize callback.
  await page.waitForFunction(() => document.documentElement.scrollWidth <= 375, null, { timeout: 5_000 })
    .catch(() => assert.fail('the widgets overflow a phone screen'));

  assert.equal(await page.locator('#intro').count(), 1);
  assert.match(await page.locator('#outro').innerText(), /own Web Worker/);
  const outside = requests.filter((path) => !path.startsWith(`/${FOLDER}/`));
  assert.deepEqual(outside, [], 'every file comes from the widget\'s own folder');
  assert.ok(requests.some((path) => path.endsWith('/siamese-web-cpu_bg.wasm')));
  assert.ok(!requests.some((path) => path.endsWith('/siamese-web_bg.wasm')), 'a reader without a real GPU loaded the WebGPU module');
  assert.ok(requests.some((path) => path.endsWith('/assets/mnist-10k.bin.gz')));
  assert.deepEqual(problems, []);
  await page.close();
});

test('a widget whose .wasm is blocked says so in place and the article still reads', async () => {
  const { page, problems } = await openArticle(articleUrl(blockingServer));
  await reachWidgets(page);
  await page.waitForFunction(() => [...document.querySelectorAll('siamese-trainer')].every((w) => w.dataset.state === 'error'), null, { timeout: 60_000 });
  for (const id of ['first', 'second']) {
    assert.match(await page.locator(`#${id} .error`).innerText(), /This demo cannot run here: the WebAssembly module failed to load/);
    assert.equal(await page.locator(`#${id} [data-ref="train"]`).isDisabled(), true);
  }
  assert.ok(await page.locator('#intro').isVisible());
  assert.deepEqual(problems, []);
  await page.close();
});

test('a widget starts from a model file the app saved, and says so when the file is missing', async () => {
  // The app trains a small model and downloads it; the blog puts it beside the article.
  const app = await browser.newPage();
  await app.goto(`http://127.0.0.1:${server.address().port}/${FOLDER}/index.html?dataset=mnist&train_images=600&test_images=300&epochs=1&autostart=1&backend=cpu`);
  await app.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 300_000, polling: 500 });
  await app.waitForSelector('#saved-models li');
  const [download] = await Promise.all([app.waitForEvent('download'), app.click('#download-model')]);
  mkdirSync(join(root, FOLDER, 'models'), { recursive: true });
  await download.saveAs(join(root, FOLDER, 'models', 'digits.siamese'));
  await app.close();

  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  await page.route('**/article.html', async (route) => {
    const response = await route.fetch();
    const html = (await response.text())
      .replace('<siamese-trainer id="first" ', '<siamese-trainer id="first" model="../models/digits.siamese" train-images="600" test-images="300" ')
      .replace('<siamese-trainer id="second" ', '<siamese-trainer id="second" model="../models/missing.siamese" ');
    await route.fulfill({ response, body: html });
  });
  await page.goto(articleUrl(server));
  await reachWidgets(page);
  await page.waitForFunction(() => document.querySelector('#first').analysis !== undefined, null, { timeout: 120_000 });
  assert.match(await page.locator('#first .metrics').innerText(), /Pretrained model \(MNIST digits, 1 epoch\(s\)\)/);
  const analysis = await page.$eval('#first', (widget) => widget.analysis);
  assert.ok(analysis.knn_acc > 0.5, `k-NN accuracy ${analysis.knn_acc} with the pretrained model`);
  // The model's file lists the digits it trained on: none is among the widget's test digits.
  assert.equal(analysis.seen_images_left_out, 0);
  assert.match(await page.locator('#first .uses').innerText(), /with the 5 nearest training images/);
  await page.waitForFunction(() => /missing\.siamese could not be loaded \(HTTP 404\)/.test(document.querySelector('#second').shadowRoot.querySelector('.error').textContent));
  await page.waitForFunction(() => document.querySelector('#second').dataset.state === 'idle');
  assert.ok(await page.locator('#second .error').isVisible(), 'the missing model is said where the reader sees it');
  assert.deepEqual(problems, []);
  await page.close();
});

test('widget files on another origin (a CDN) work in a browser without WebGPU; held-out digits are called none of the above', async () => {
  const plain = await launchChromium({ webgpu: false });
  try {
    const page = await plain.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(error.message));
    const widgetUrl = `http://127.0.0.1:${cdn.address().port}/${FOLDER}/www/widget.js`;
    // The post is on the blog's server; the widget's files come from the CDN's.
    writeFileSync(join(root, 'blog-post.html'), `<!doctype html><title>post</title><p id="text">Before.</p>
      <script type="module" src="${widgetUrl}"></script>
      <siamese-trainer id="w" train-images="600" test-images="300" epochs="1" hold-out="8, 9" autostart compact>No demo.</siamese-trainer>`);
    await page.goto(`http://127.0.0.1:${server.address().port}/blog-post.html`);
    await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#w').dataset.state), null, { timeout: 300_000, polling: 500 });
    const { state, result, error } = await page.$eval('#w', (w) => ({ state: w.dataset.state, result: w.result, error: w.shadowRoot.querySelector('.error').textContent }));
    assert.equal(state, 'done', error);
    assert.equal(result.backend, 'cpu');
    assert.match(await page.locator('#w .status').innerText(), /training will run on the CPU|Training on the CPU/);
    assert.equal(await page.locator('#text').innerText(), 'Before.');
    await page.waitForFunction(() => /Never trained on 8, 9: [\d.]+ % of those images are called none of the above/
      .test(document.querySelector('#w').shadowRoot.querySelector('.uses').textContent));
    assert.deepEqual(problems, []);
  } finally {
    await plain.close();
  }
});

test('a widget\'s bad attribute is named with the value given and what it may be, inside the widget', async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  writeFileSync(join(root, 'bad-post.html'), `<!doctype html><title>post</title>
    <script type="module" src="/${FOLDER}/www/widget.js"></script>
    <siamese-trainer id="epochs" train-images="300" test-images="100" epochs="-3" autostart compact>No demo.</siamese-trainer>
    <siamese-trainer id="backend" train-images="300" test-images="100" epochs="1" backend="gpu9" autostart compact>No demo.</siamese-trainer>`);
  await page.goto(`http://127.0.0.1:${server.address().port}/bad-post.html`);
  for (const [id, expected] of [
    ['epochs', 'epochs is "-3": it must be a whole number, 1 or more'],
    ['backend', 'backend is "gpu9": it must be auto, webgpu or cpu'],
  ]) {
    await page.waitForFunction((id) => document.getElementById(id).dataset.state === 'error', id, { timeout: 120_000 });
    const error = await page.$eval(`#${id}`, (w) => w.shadowRoot.querySelector('.error').textContent);
    assert.ok(error.includes(expected), error);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('a widget far down a post loads nothing until the reader reaches it and says what it will download; Train starts one that waits', async () => {
  const seen = [];
  const site = await serveStatic(root, { log: (path, method) => seen.push(`${method} ${path}`) });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  try {
    const base = `http://127.0.0.1:${site.address().port}/${FOLDER}`;
    const widget = (id) => `<siamese-trainer id="${id}" train-images="600" test-images="300" epochs="1" compact>No demo.</siamese-trainer>`;
    writeFileSync(join(root, 'long-post.html'), `<!doctype html><title>post</title>
      <script type="module" src="${base}/www/widget.js"></script>
      <div style="height: 4000px">A long article.</div>${widget('far')}
      <div style="height: 4000px">More of it.</div>${widget('pressed')}`);
    await page.goto(`http://127.0.0.1:${site.address().port}/long-post.html`);
    const said = /it downloads the trainer and the digits, ([\d.]+) MB\.$/;
    await page.waitForFunction((said) => [...document.querySelectorAll('siamese-trainer')]
      .every((w) => new RegExp(said).test(w.shadowRoot.querySelector('.status').textContent)), said.source);
    // What a reader without a real GPU downloads here: the CPU-only module, its glue and the
    // digits, as this server sends them.
    const bytes = ['siamese-web-cpu_bg.wasm', 'siamese-web-cpu.js', 'assets/mnist-10k.bin.gz']
      .reduce((sum, name) => sum + statSync(join(root, FOLDER, name)).size, 0);
    const status = await page.locator('#far .status').innerText();
    assert.equal(status.match(said)[1], (bytes / 1e6).toFixed(1), status);
    assert.deepEqual(await widgetStates(page), ['waiting', 'waiting']);
    const downloads = () => seen.filter((request) => /^GET .*(\.wasm|mnist-10k\.bin\.gz)$/.test(request));
    assert.deepEqual(downloads(), [], 'a widget out of view downloaded the trainer or the data');

    // Train, pressed before the reader scrolled there, loads and trains.
    await page.evaluate(() => document.querySelector('#pressed').shadowRoot.querySelector('[data-ref="train"]').click());
    await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#pressed').dataset.state), null, { timeout: 300_000, polling: 500 });
    const { state, result, error } = await page.$eval('#pressed', (w) => ({ state: w.dataset.state, result: w.result, error: w.shadowRoot.querySelector('.error').textContent }));
    assert.equal(state, 'done', error);
    assert.equal(result.epochs, 1);
    assert.ok(result.test_acc_best > 0.7, `test pair accuracy ${result.test_acc_best}`);
    assert.ok(downloads().some((request) => request.endsWith('/siamese-web-cpu_bg.wasm')), downloads().join(' '));
    assert.equal(await page.$eval('#far', (w) => w.dataset.state), 'waiting');

    // Reached, the other one loads.
    await page.locator('#far').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelector('#far').dataset.state === 'idle', null, { timeout: 60_000 });
    assert.match(await page.locator('#far .status').innerText(), /CPU/);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    site.close();
  }
});

test('a widget for the reader\'s own images trains on a folder at its image size, and refuses a size the network cannot take as the files load', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'siamese-web-widget-upload-'));
  writeShapeFolders(folder, 12);
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  const widgetUrl = `http://127.0.0.1:${server.address().port}/${FOLDER}/www/widget.js`;
  writeFileSync(join(root, 'upload-post.html'), `<!doctype html><title>post</title>
    <script type="module" src="${widgetUrl}"></script>
    <siamese-trainer id="rgb" dataset="upload" image-size="32x32 rgb" epochs="3" backend="cpu" autostart>No demo.</siamese-trainer>
    <siamese-trainer id="tiny" dataset="upload" image-size="8x8 grey" backend="cpu">No demo.</siamese-trainer>`);
  await page.goto(`http://127.0.0.1:${server.address().port}/upload-post.html`);
  await page.waitForFunction(() => [...document.querySelectorAll('siamese-trainer')].every((w) => w.dataset.state === 'idle'));

  await page.locator('#rgb input[type=file]').setInputFiles(folder);
  await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#rgb').dataset.state), null, { timeout: 300_000, polling: 500 });
  const { state, result, error } = await page.$eval('#rgb', (w) => ({ state: w.dataset.state, result: w.result, error: w.shadowRoot.querySelector('.error').textContent }));
  assert.equal(state, 'done', error);
  assert.ok(result.test_pairs > 0 && result.test_acc_best > 0.7, JSON.stringify(result));

  // 8x8 is below what two 3x3 convolutions and two poolings take: said when the files load.
  await page.locator('#tiny input[type=file]').setInputFiles(folder);
  await page.waitForFunction(() => /too small for the network: use at least 10x10/.test(document.querySelector('#tiny').shadowRoot.querySelector('.error').textContent));
  assert.equal(await page.locator('#tiny button', { hasText: 'Train' }).isDisabled(), true);
  assert.deepEqual(problems, []);
  await page.close();
});
