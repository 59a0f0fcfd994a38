// www/features.js: which module the training worker loads, the relaxed-SIMD probe it rests on,
// and the built modules (dist/, from `trunk build --release`), checked in Node's V8 with relaxed
// SIMD on and off (Debian's Node 20 has it behind a flag; the browsers of the other tests have
// it, and load the CPU-only module).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chooseModule } from '../../www/features.js';

test('the CPU-only module loads where relaxed SIMD is and WebGPU would not be used', () => {
  assert.equal(chooseModule('missing', false, true), 'siamese-web-cpu');
  assert.equal(chooseModule('software', false, true), 'siamese-web-cpu');
  // WebGPU asked for, but there is none: the CPU trains.
  assert.equal(chooseModule('missing', true, true), 'siamese-web-cpu');
  assert.equal(chooseModule('software', true, true), 'siamese-web');
  assert.equal(chooseModule('hardware', false, true), 'siamese-web');
  // Without relaxed SIMD the CPU-only module would not load: the full one trains on the CPU.
  for (const webgpu of ['missing', 'software', 'hardware']) {
    for (const asked of [false, true]) assert.equal(chooseModule(webgpu, asked, false), 'siamese-web');
  }
});

/** What `script` (an ES module) prints, in a Node whose WebAssembly has relaxed SIMD or not. */
const printed = (relaxedSimd, script) => execFileSync(process.execPath, [
  `--${relaxedSimd ? '' : 'no-'}experimental-wasm-relaxed-simd`, '--input-type=module', '-e', script,
]).toString().trim();

test('the probe tells a WebAssembly with relaxed SIMD from one without', () => {
  const features = JSON.stringify(new URL('../../www/features.js', import.meta.url).href);
  const script = `import { hasRelaxedSimd } from ${features}; console.log(hasRelaxedSimd());`;
  assert.equal(printed(true, script), 'true');
  assert.equal(printed(false, script), 'false');
});

test('the full module loads without relaxed SIMD and the CPU-only one needs it', () => {
  const valid = (relaxedSimd, module) => {
    const path = JSON.stringify(new URL(`../../dist/${module}_bg.wasm`, import.meta.url).pathname);
    const script = `import { readFileSync } from 'node:fs'; console.log(WebAssembly.validate(readFileSync(${path})));`;
    return printed(relaxedSimd, script) === 'true';
  };
  assert.ok(valid(false, 'siamese-web') && valid(true, 'siamese-web'));
  assert.ok(valid(true, 'siamese-web-cpu'));
  assert.ok(!valid(false, 'siamese-web-cpu'), 'the CPU-only module has no relaxed SIMD: www/features.js would not need to check');
});
