// The command line and the page on the same files: a folder of shapes (a broken file among them)
// trained natively with `siamese train`, the model file loaded with "Load a model file", and the
// same two images compared in both, to the same distance; and the same folder split alike, image
// by image. Needs the release build in dist/ and Cargo (scripts/test.sh builds both first).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Runs `siamese` through Cargo (already built by the native tests); its standard output. It
 * blocks the test runner's timers, so it has a time limit of its own. */
function siamese(...args) {
  return execFileSync('cargo', ['run', '--release', '--quiet', '--bin', 'siamese', '--', ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: 300_000 });
}

/** `siamese`'s JSON line. */
const siameseJson = (...args) => JSON.parse(siamese(...args).trim().split('\n').pop());

/** A split list (`path<TAB>class<TAB>part` lines under a header) as `path class` -> part, each
 * path from the picked folder's name on (`siamese` prints the paths it read). */
function parts(tsv, root = '') {
  const [header, ...lines] = tsv.trim().split('\n');
  assert.equal(header, 'path\tclass\tpart');
  return new Map(lines.map((line) => {
    const [path, className, part] = line.split('\t');
    return [`${path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path} ${className}`, part];
  }));
}

test('a model trained on the command line loads in the page and measures the same distances', async () => {
  const root = mkdtempSync(join(tmpdir(), 'siamese-web-cli-'));
  const data = join(root, 'shapes');
  writeShapeFolders(data, 30);
  writeFileSync(join(data, 'disc', 'notes.png'), 'not an image');
  const model = join(root, 'shapes.siamese');
  const trained = siameseJson('train', '--data', data, '--image-size', '32x32-grey', '--epochs', '3', '--save', model);
  console.log('command line', JSON.stringify(trained));
  // Six test images a class, each with a similar and a dissimilar partner.
  assert.equal(trained.test_pairs, 36);
  assert.ok(trained.auc > 0.9, `AUC ${trained.auc}`);
  const [left, right] = [join(data, 'rows', 'rows_1.png'), join(data, 'disc', 'disc_2.png')];
  const native = siameseJson('compare', '--model', model, left, right);

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

test('the page and the command line put every image of a folder in the same part', async () => {
  const root = mkdtempSync(join(tmpdir(), 'siamese-web-split-'));
  const data = join(root, 'shapes');
  writeShapeFolders(data, 20);
  // A group folder of the class rows (its files go to one side together), and a copy of an
  // image under another name.
  mkdirSync(join(data, 'rows', '@session'));
  writeShapeFolders(join(root, 'more'), 26);
  for (let i = 20; i < 26; i++) copyFileSync(join(root, 'more', 'rows', `rows_${i}.png`), join(data, 'rows', '@session', `rows_${i}.png`));
  copyFileSync(join(data, 'disc', 'disc_3.png'), join(data, 'disc', 'disc_copy.png'));
  const native = parts(siamese('split', '--data', data), root);
  assert.equal(native.size, 67);

  const port = server.address().port;
  const { page, problems } = await openPage(browser, `http://127.0.0.1:${port}/index.html`);
  await page.waitForFunction(() => document.body.dataset.state === 'idle');
  await page.setInputFiles('#pick-folder', data);
  await page.waitForFunction(() => /training and/.test(document.getElementById('dataset-summary').innerText));
  // The @session folder and the copy with its original.
  const [, inTraining, inTest] = /Groups kept on one side of the split: (\d+) in training, (\d+) in the test part/
    .exec(await page.locator('#dataset-summary').innerText());
  assert.equal(Number(inTraining) + Number(inTest), 2);
  await page.waitForFunction(() => !document.getElementById('download-split').disabled);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-split')]);
  assert.equal(download.suggestedFilename(), 'siamese-web-split.tsv');
  const inPage = parts(readFileSync(await download.path(), 'utf8'));
  assert.deepEqual(new Map([...inPage].sort()), new Map([...native].sort()));
  const group = [...native].filter(([name]) => name.startsWith('shapes/rows/@session/')).map(([, part]) => part);
  assert.equal(group.length, 6);
  assert.equal(new Set(group).size, 1, `the group was split: ${group}`);
  assert.equal(native.get('shapes/disc/disc_copy.png disc'), native.get('shapes/disc/disc_3.png disc'));

  // A model the command line trained on the folder knows the page's images for the ones it saw;
  // the same file as an earlier version wrote it (without them) cannot be checked, and says so.
  const model = join(root, 'shapes.siamese');
  siameseJson('train', '--data', data, '--epochs', '1', '--save', model);
  const older = join(root, 'older.siamese');
  writeFileSync(older, withoutSeenImages(readFileSync(model)));
  for (const [file, caption] of [
    [model, /^On \d+ test images\.$/],
    [older, /does not list the images it trained on: an earlier version saved it, so these figures may include some/],
  ]) {
    await page.locator('#analysis').evaluate((el) => el.replaceChildren());
    await page.setInputFiles('#load-model', file);
    await page.waitForSelector('#analysis table');
    assert.match(await page.locator('#analysis p').innerText(), caption);
    assert.equal(await page.locator('#data-changed').isHidden(), true);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

/** A model file as the version before the images it saw were kept wrote it: its metadata without
 * `seen_images` (the layout: magic, metadata length u32, weights length u64, metadata, weights). */
function withoutSeenImages(bytes) {
  const metadataLength = bytes.readUInt32LE(8);
  const metadata = JSON.parse(bytes.subarray(20, 20 + metadataLength).toString());
  delete metadata.seen_images;
  const json = Buffer.from(JSON.stringify(metadata));
  const header = Buffer.from(bytes.subarray(0, 20));
  header.writeUInt32LE(json.length, 8);
  return Buffer.concat([header, json, bytes.subarray(20 + metadataLength)]);
}
