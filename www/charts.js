// Charts of a run, drawn with Chart.js. Its UMD build (copied beside the app's files) sets a
// global `Chart`; it is taken and the host page's own global, if any, put back, so a widget
// leaves a blog's scripts as it found them.
const hostChart = Object.getOwnPropertyDescriptor(globalThis, 'Chart');
await import(new URL('../chart.umd.min.js', import.meta.url).href);
const Chart = globalThis.Chart;
if (typeof Chart !== 'function') throw new Error('Chart.js did not load');
if (hostChart) Object.defineProperty(globalThis, 'Chart', hostChart);
else delete globalThis.Chart;

// Text, grid lines and series follow the reader's colour scheme, as the page's and widget's CSS do.
const DARK = globalThis.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
const COLORS = DARK
  ? { train: '#60a5fa', epoch: '#bfdbfe', validation: '#f87171', similar: '#4ade80', dissimilar: '#c084fc' }
  : { train: '#2563eb', epoch: '#1e3a8a', validation: '#dc2626', similar: '#16a34a', dissimilar: '#9333ea' };
if (DARK) {
  Chart.defaults.color = '#cbd5e1';
  Chart.defaults.borderColor = 'rgba(255, 255, 255, 0.14)';
}
const BASE = { animation: false, responsive: true, maintainAspectRatio: false };

const REDRAW_MS = 250;

/** Loss against epochs: every batch, the mean of each epoch, and validation. */
export class LossChart {
  constructor(canvas) {
    this.chart = new Chart(canvas, {
      type: 'line',
      data: {
        datasets: [
          { label: 'train loss (batch)', data: [], borderColor: COLORS.train, borderWidth: 1, pointRadius: 0 },
          { label: 'train loss (epoch)', data: [], borderColor: COLORS.epoch, pointRadius: 3 },
          { label: 'validation loss (epoch)', data: [], borderColor: COLORS.validation, pointRadius: 3 },
        ],
      },
      options: {
        ...BASE,
        parsing: false,
        scales: {
          x: { type: 'linear', min: 0, title: { display: true, text: 'epoch' } },
          y: { type: 'linear', min: 0, title: { display: true, text: 'contrastive loss' } },
        },
        plugins: { title: { display: true, text: 'Loss' } },
      },
    });
    this.pending = false;
    this.drawnAt = -Infinity;
  }

  reset(epochs) {
    for (const dataset of this.chart.data.datasets) dataset.data = [];
    this.chart.options.scales.x.max = epochs;
    this.chart.update();
  }

  addBatch({ epoch, step, steps_per_epoch: steps, loss }) {
    this.chart.data.datasets[0].data.push({ x: epoch - 1 + step / steps, y: loss });
    this.redrawSoon();
  }

  addEpoch({ epoch, train_loss: train, validation_loss: validation }) {
    this.chart.data.datasets[1].data.push({ x: epoch, y: train });
    if (validation != null) this.chart.data.datasets[2].data.push({ x: epoch, y: validation });
    this.redrawSoon();
  }

  // Batches arrive many times a second from workers that share the cores with this page: redraw
  // at most every REDRAW_MS, in an animation frame.
  redrawSoon() {
    if (this.pending) return;
    this.pending = true;
    setTimeout(() => requestAnimationFrame(() => {
      this.pending = false;
      this.drawnAt = performance.now();
      this.chart.update('none');
    }), Math.max(0, this.drawnAt + REDRAW_MS - performance.now()));
  }
}

/** Histogram of test-pair distances, similar against dissimilar. */
export function histogramChart(canvas, { similar_distances: similar, dissimilar_distances: dissimilar }, threshold, previous) {
  previous?.destroy();
  const bins = 30;
  const max = Math.max(1e-6, ...similar, ...dissimilar);
  const width = max / bins;
  const count = (values) => {
    const counts = new Array(bins).fill(0);
    for (const v of values) counts[Math.min(bins - 1, Math.floor(v / width))] += 1;
    return counts;
  };
  return new Chart(canvas, {
    type: 'bar',
    data: {
      labels: Array.from({ length: bins }, (_, i) => ((i + 0.5) * width).toFixed(2)),
      datasets: [
        { label: 'similar pairs', data: count(similar), backgroundColor: COLORS.similar + 'aa' },
        { label: 'dissimilar pairs', data: count(dissimilar), backgroundColor: COLORS.dissimilar + 'aa' },
      ],
    },
    options: {
      ...BASE,
      scales: {
        x: { stacked: false, title: { display: true, text: 'distance D' } },
        y: { title: { display: true, text: 'test pairs' } },
      },
      plugins: { title: { display: true, text: `Distances (best threshold ${threshold.toFixed(3)}, article's 0.5)` } },
    },
  });
}

/** ROC curve of D as the score for "dissimilar". */
export function rocChart(canvas, roc, auc, previous) {
  previous?.destroy();
  return new Chart(canvas, {
    type: 'scatter',
    data: {
      datasets: [
        { label: `ROC (AUC ${auc.toFixed(4)})`, data: roc.map(([x, y]) => ({ x, y })), showLine: true, borderColor: COLORS.train, pointRadius: 0 },
        { label: 'chance', data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, borderDash: [4, 4], borderColor: '#9ca3af', pointRadius: 0 },
      ],
    },
    options: {
      ...BASE,
      scales: {
        x: { min: 0, max: 1, title: { display: true, text: 'false positive rate' } },
        y: { min: 0, max: 1, title: { display: true, text: 'true positive rate' } },
      },
      plugins: { title: { display: true, text: 'ROC curve (test pairs)' } },
    },
  });
}

/** A colour per class: ten distinct ones, then evenly spread hues. */
function classColour(index) {
  const TEN = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#db2777', '#65a30d', '#854d0e', '#475569'];
  return TEN[index] ?? `hsl(${(index * 137.5) % 360} 70% 45%)`;
}

/** Test images on the first two principal components of their embeddings, one colour per class;
 * `onPoint(point, className)` gets the point under the pointer. `bounds` ({x: [min, max], y:
 * [min, max]}) fixes the axes, so frames of the map over time compare. */
export function embeddingMap(canvas, { map, class_names: classNames }, onPoint, previous, bounds = null) {
  previous?.destroy();
  const datasets = classNames.map((name, label) => ({
    label: name,
    data: map.filter((p) => p.label === label),
    backgroundColor: classColour(label),
    pointRadius: 3,
  })).filter((dataset) => dataset.data.length > 0);
  return new Chart(canvas, {
    type: 'scatter',
    data: { datasets },
    options: {
      ...BASE,
      // The dot nearest the pointer, wherever it is: exploring the map needs no pixel aim.
      interaction: { mode: 'nearest', intersect: false },
      scales: {
        x: { min: bounds?.x[0], max: bounds?.x[1], title: { display: true, text: 'first principal component' } },
        y: { min: bounds?.y[0], max: bounds?.y[1], title: { display: true, text: 'second principal component' } },
      },
      plugins: {
        title: { display: true, text: 'Embedding map (PCA of test-image embeddings)' },
        tooltip: { callbacks: { label: (item) => item.dataset.label } },
      },
      onHover: (_, elements, chart) => {
        const [hit] = elements;
        if (!hit) return;
        const dataset = chart.data.datasets[hit.datasetIndex];
        onPoint(dataset.data[hit.index], dataset.label);
      },
    },
  });
}

/** "None of the above" as a DET curve: unknowns accepted against known images rejected as the
 * unknown distance moves, with the equal error rate and the chosen distance marked. */
export function detChart(canvas, { curve, equal_error: equal, chosen }, previous) {
  previous?.destroy();
  const point = (p) => ({ x: p.far, y: p.frr });
  /** @type {Record<string, any>[]} */
  const datasets = [
    { label: 'as the distance moves', data: curve.map(point), showLine: true, borderColor: COLORS.train, pointRadius: 0 },
    { label: `chosen distance ${chosen.distance.toFixed(3)}`, data: [point(chosen)], backgroundColor: COLORS.validation, pointRadius: 6 },
  ];
  if (equal) {
    datasets.push({ label: `equal error rate ${(100 * (equal.far + equal.frr) / 2).toFixed(1)} %`, data: [point(equal)], backgroundColor: COLORS.similar, pointStyle: 'rectRot', pointRadius: 7 });
  }
  return new Chart(canvas, {
    type: 'scatter',
    data: { datasets },
    options: {
      ...BASE,
      scales: {
        x: { min: 0, max: 1, title: { display: true, text: 'unknowns accepted (false accept rate)' } },
        y: { min: 0, max: 1, title: { display: true, text: 'known images rejected (false reject rate)' } },
      },
      plugins: { title: { display: true, text: 'None of the above (test images)' } },
    },
  });
}
