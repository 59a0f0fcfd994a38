// The command line's model file in the page: a folder of shapes (a broken file among them)
// trained natively with `siamese train`, the file loaded with "Load a model file", and the same
// two images compared in both, to the same distance. Needs the release build in dist/ and Cargo
// (scripts/test.sh builds both first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveStatic } from './server.js';
import { launchChromium, openPage } from './browser.js';
import { writeShapeFolders } from './images.js';

const DIST = new URL('../../dist', import.meta.url).pathname;
let server;
let browser;

before(async () => {
  server = await serveStatic(DIST);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** Runs `siamese` through Cargo (already built by the native tests); its JSON line. It blocks the
 * test runner's timers, so it has a time limit of its own. */
function siamese(...args) {
  const output = execFileSync('cargo', ['run', '--release', '--quiet', '--bin', 'siamese', '--', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: 300_000 });
  return JSON.parse(output.trim().split('\n').pop());
}

test('a model trained on the command line loads in the page and measures the same distances', async () => {
  const root = mkdtempSync(join(tmpdir(), 'siamese-web-cli-'));
  const data = join(root, 'shapes');
  writeShapeFolders(data, 30);
  writeFileSync(join(data, 'disc', 'notes.png'), 'not an image');
  const model = join(root, 'shapes.siamese');
  const trained = siamese('train', '--data', data, '--image-size', '32x32-grey', '--epochs', '3', '--save', model);
  console.log('command line', JSON.stringify(trained));
  // Six test images a class, each with a similar and a dissimilar partner.
  assert.equal(trained.test_pairs, 36);
  assert.ok(trained.auc > 0.9, `AUC ${trained.auc}`);
  const [left, right] = [join(data, 'rows', 'rows_1.png'), join(data, 'disc', 'disc_2.png')];
  const native = siamese('compare', '--model', model, left, right);

  const port = server.address().port;
  const { page, problems } = await openPage(browser, `http://127.0.0.1:${port}/index.html`);
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.setInputFiles('#load-model', model);
  await page.waitForFunction(() => document.getElementById('model-status').dataset.loaded === 'shapes.siamese');
  assert.match(await page.locator('#model-status').innerText(), /32×32 grey, 3 classes/);
  await page.setInputFiles('#compare-left', left);
  await page.setInputFiles('#compare-right', right);
  await page.click('#compare');
  await page.waitForSelector('#compare-result figcaption');
  const verdict = native.dissimilar ? 'dissimilar' : 'similar';
  assert.equal(await page.locator('#compare-result figcaption').innerText(),
    `D = ${native.distance.toFixed(3)}: ${verdict} (threshold ${native.threshold.toFixed(3)})`);
  assert.deepEqual(problems, []);
  await page.close();
});
