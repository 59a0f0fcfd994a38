// The peer of the browser benchmark: our job in TensorFlow.js 4.22 on its wasm backend (XNNPACK,
// SIMD, one thread: its threads need cross-origin isolation, which our page does not need), in
// the same browser as our CPU path. The same digits (assets/mnist-10k.bin.gz), tower (conv 32
// -> pool -> conv 64 -> pool -> dense 128, ReLU; both images of a pair in one batch), contrastive
// loss as the formula (y = 0 similar, y = 1 dissimilar, margin 1), Adam at 1e-3, batches of 64
// pairs drawn by our rule (half similar, dissimilar partners of another class, seeded). Writes
// one line with the fields of `bench_steps` into #results and sets <body data-state="done">.
//
//   ?batch=64&warmup=3&steps=30
const tf = /** @type {any} */ (globalThis).tf;
const params = new URLSearchParams(location.search);
const number = (name, fallback) => Number(params.get(name) ?? fallback);
const batch = number('batch', 64);
const warmup = number('warmup', 3);
const steps = number('steps', 30);

// tfjs-backend-wasm 4.22 has no kernel for the convolution's weight gradient. It is a
// convolution itself, of the input's channels (as a batch) by the output gradient (as the
// filter), so its own Conv2D kernel (XNNPACK) computes it: dW[i,j,c,o] = sum over n, y, x of
// input[n, y+i, x+j, c] * dy[n, y, x, o]. Only what our tower needs: stride 1, no padding.
function registerConv2DBackpropFilter() {
  const run = (name, inputs, attrs, backend) => tf.getKernel(name, 'wasm').kernelFunc({ inputs, attrs, backend });
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs: { x, dy }, attrs, backend }) => {
      const { strides, pad, dataFormat, filterShape } = attrs;
      const unit = (value) => [value].flat().every((s) => s === 1);
      if (!unit(strides) || pad !== 'valid' || dataFormat !== 'NHWC') {
        throw new Error(`Conv2DBackpropFilter here takes stride 1, no padding, NHWC only`);
      }
      const channelsAsBatch = run('Transpose', { x }, { perm: [3, 1, 2, 0] }, backend);
      const gradientAsFilter = run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }, backend);
      const product = run('Conv2D', { x: channelsAsBatch, filter: gradientAsFilter },
        { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] }, backend);
      const gradient = run('Transpose', { x: product }, { perm: [1, 2, 0, 3] }, backend);
      for (const part of [channelsAsBatch, gradientAsFilter, product]) backend.disposeData(part.dataId);
      if (gradient.shape.join() !== filterShape.join()) {
        throw new Error(`weight gradient ${gradient.shape} for a filter of ${filterShape}`);
      }
      return gradient;
    },
  });
}

/** Refuses to time a peer whose weight gradient is wrong: the kernel against the sum itself. */
async function checkConv2DBackpropFilter() {
  const [n, height, width, channels, outputs] = [2, 6, 5, 3, 4];
  const x = tf.randomNormal([n, height, width, channels], 0, 1, 'float32', 7);
  const dy = tf.randomNormal([n, height - 2, width - 2, outputs], 0, 1, 'float32', 8);
  const filter = tf.zeros([3, 3, channels, outputs]);
  // The gradient of sum(conv(x, w) * dy) with respect to w is the kernel's output for dy.
  const gradient = tf.grad((w) => tf.sum(tf.mul(tf.conv2d(x, w, 1, 'valid'), dy)))(filter);
  const kernel = await gradient.data();
  const [xs, dys] = [await x.data(), await dy.data()];
  let worst = 0;
  for (let i = 0; i < 3; i += 1) for (let j = 0; j < 3; j += 1) for (let c = 0; c < channels; c += 1) {
    for (let o = 0; o < outputs; o += 1) {
      let sum = 0;
      for (let b = 0; b < n; b += 1) for (let y = 0; y < height - 2; y += 1) for (let z = 0; z < width - 2; z += 1) {
        sum += xs[((b * height + y + i) * width + z + j) * channels + c] * dys[((b * (height - 2) + y) * (width - 2) + z) * outputs + o];
      }
      worst = Math.max(worst, Math.abs(sum - kernel[((i * 3 + j) * channels + c) * outputs + o]));
    }
  }
  tf.dispose([x, dy, filter, gradient]);
  if (worst > 1e-4) throw new Error(`the registered Conv2DBackpropFilter is off by ${worst}`);
}

/** The 10,000 digits as float32 in 0..1 and their labels (the asset's layout: scripts/peer_common.py). */
async function loadDigits(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  const bytes = new Uint8Array(await new Response(response.body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== 'SMNIST01') throw new Error('not the digits asset');
  const view = new DataView(bytes.buffer);
  const count = view.getUint32(8, true);
  const size = view.getUint16(12, true) * view.getUint16(14, true);
  const labels = bytes.slice(16, 16 + count);
  const pixels = Float32Array.from(bytes.subarray(16 + count, 16 + count + count * size), (p) => p / 255);
  return { count, size, labels, pixels };
}

function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `count` pairs by our rule: every other one similar, the dissimilar partner of another class. */
function drawPairs({ labels }, count, random) {
  const byClass = new Map();
  labels.forEach((label, index) => byClass.set(label, [...(byClass.get(label) ?? []), index]));
  const classes = [...byClass.keys()];
  const pick = (list) => list[Math.floor(random() * list.length)];
  const pairs = [];
  for (let n = 0; n < count; n += 1) {
    const first = Math.floor(random() * labels.length);
    const dissimilar = n % 2;
    let second = first;
    if (dissimilar) second = pick(byClass.get(pick(classes.filter((c) => c !== labels[first]))));
    else while (second === first) second = pick(byClass.get(labels[first]));
    pairs.push([first, second, dissimilar]);
  }
  return pairs;
}

function glorotUniform(shape, fanIn, fanOut, seed) {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return tf.variable(tf.randomUniform(shape, -limit, limit, 'float32', seed));
}

function buildTower() {
  const weights = {
    conv1: glorotUniform([3, 3, 1, 32], 9, 9 * 32, 1), bias1: tf.variable(tf.zeros([32])),
    conv2: glorotUniform([3, 3, 32, 64], 9 * 32, 9 * 64, 2), bias2: tf.variable(tf.zeros([64])),
    dense: glorotUniform([1600, 128], 1600, 128, 3), bias3: tf.variable(tf.zeros([128])),
  };
  const tower = (images) => {
    let h = tf.maxPool(tf.relu(tf.add(tf.conv2d(images, weights.conv1, 1, 'valid'), weights.bias1)), 2, 2, 'valid');
    h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, weights.conv2, 1, 'valid'), weights.bias2)), 2, 2, 'valid');
    return tf.relu(tf.add(tf.matMul(tf.reshape(h, [-1, 1600]), weights.dense), weights.bias3));
  };
  return { tower, variables: Object.values(weights) };
}

async function main() {
  tf.wasm.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  registerConv2DBackpropFilter();
  await tf.setBackend('wasm');
  await checkConv2DBackpropFilter();
  const digits = await loadDigits('/assets/mnist-10k.bin.gz');
  const side = Math.sqrt(digits.size);
  const random = seededRandom(42);
  const pairs = drawPairs(digits, (warmup + steps) * batch, random);
  const { tower, variables } = buildTower();
  const optimizer = tf.train.adam(1e-3);

  const inputs = (from) => {
    const chosen = pairs.slice(from, from + batch);
    const images = new Float32Array(2 * batch * digits.size);
    chosen.forEach(([first, second], n) => {
      images.set(digits.pixels.subarray(first * digits.size, (first + 1) * digits.size), n * digits.size);
      images.set(digits.pixels.subarray(second * digits.size, (second + 1) * digits.size), (batch + n) * digits.size);
    });
    return [tf.tensor4d(images, [2 * batch, side, side, 1]), tf.tensor1d(chosen.map(([, , y]) => y))];
  };
  const step = async (from) => {
    const [images, dissimilar] = inputs(from);
    const loss = optimizer.minimize(() => {
      const [a, b] = tf.split(tower(images), 2);
      const distance = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(a, b)), 1), 1e-12));
      const similarTerm = tf.mul(tf.sub(1, dissimilar), tf.square(distance));
      const dissimilarTerm = tf.mul(dissimilar, tf.square(tf.relu(tf.sub(1, distance))));
      return tf.mean(tf.add(similarTerm, dissimilarTerm));
    }, true, variables);
    const value = (await loss.data())[0];
    tf.dispose([images, dissimilar, loss]);
    if (!Number.isFinite(value)) throw new Error(`the loss is ${value}`);
    return value;
  };

  const ends = [];
  const start = performance.now();
  let lastLoss = null;
  for (let index = 0; index < warmup + steps; index += 1) {
    lastLoss = await step(index * batch);
    ends.push(performance.now() - start);
  }
  const stepMs = ends.slice(warmup).map((end, n) => end - ends[warmup - 1 + n]).sort((x, y) => x - y);
  const line = {
    backend: 'tfjs-wasm', runner: 'chromium', tfjs: tf.version.tfjs, simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    cross_origin_isolated: self.crossOriginIsolated, multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
    threads: tf.wasm.getThreadsCount(), batch, steps, pairs_per_s: (steps * batch) / (stepMs.reduce((sum, ms) => sum + ms, 0) / 1000),
    ms_per_step_median: stepMs[Math.floor(steps / 2)], ms_per_step_min: stepMs[0], ms_per_step_max: stepMs[steps - 1],
    first_step_ms: ends[0], last_loss: lastLoss, tensors_held: tf.memory().numTensors,
  };
  document.getElementById('results').textContent = `${JSON.stringify(line)}\n`;
}

main().then(
  () => { document.body.dataset.state = 'done'; },
  (error) => {
    document.getElementById('results').textContent = `${JSON.stringify({ backend: 'tfjs-wasm', error: String(error?.stack ?? error) })}\n`;
    document.body.dataset.state = 'done';
  },
);
