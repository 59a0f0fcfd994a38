"""What the peers of our benchmark share: the digits asset, pairs by our rule, and the timing
and accuracy lines they print (the fields of `cargo run --release --example bench_steps`).
Used by keras_peer.py and torch_peer.py; not part of the tests."""

import gzip
import json
import os
import struct
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 3


def load_digits():
    """The 10,000 digits as float32 in 0..1, shaped (count, 28, 28), and their labels."""
    with gzip.open(os.path.join(ROOT, "assets", "mnist-10k.bin.gz")) as f:
        data = f.read()
    assert data[:8] == b"SMNIST01", "not the digits asset"
    count, rows, cols = struct.unpack_from("<IHH", data, 8)
    labels = np.frombuffer(data, np.uint8, count, 16).astype(np.int64)
    pixels = np.frombuffer(data, np.uint8, count * rows * cols, 16 + count)
    return pixels.reshape(count, rows, cols).astype(np.float32) / 255.0, labels


def split(labels, rng):
    """The article's 8,000 training and 2,000 test digits, as index arrays."""
    order = rng.permutation(len(labels))
    return order[:8000], order[8000:]


def pairs(labels, rng):
    """Two pairs per image: one with another image of its class, one with an image of another."""
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    first, second, different = [], [], []
    for i, label in enumerate(labels):
        same = by_class[label]
        partner = same[rng.integers(len(same))]
        while partner == i:
            partner = same[rng.integers(len(same))]
        other = rng.choice([c for c in by_class if c != label])
        first += [i, i]
        second += [partner, by_class[other][rng.integers(len(by_class[other]))]]
        different += [0.0, 1.0]
    order = rng.permutation(len(first))
    return np.array(first)[order], np.array(second)[order], np.array(different, np.float32)[order]


def time_steps(step, batches, steps, runner, batch):
    """Runs `step` on WARMUP + `steps` batches (each call must wait for its result) and prints
    the line of bench_steps: pairs/s over the timed steps, their median, min and max."""
    ends = []
    start = time.perf_counter()
    for index in range(WARMUP + steps):
        step(*batches(index))
        ends.append(time.perf_counter() - start)
    step_ms = sorted(1000 * (t1 - t0) for t0, t1 in zip(ends[WARMUP - 1:], ends[WARMUP:]))
    print(json.dumps({**runner, "batch": batch, "steps": steps,
                      "pairs_per_s": steps * batch / (sum(step_ms) / 1000),
                      "ms_per_step_median": step_ms[len(step_ms) // 2],
                      "ms_per_step_min": step_ms[0], "ms_per_step_max": step_ms[-1],
                      "first_step_ms": 1000 * ends[0]}), flush=True)


def train_epochs(step, to_batch, labels, epochs, batch, rng):
    """Trains `epochs` epochs of new pairs of the images `labels` label, `batch` pairs a step
    (`to_batch` makes the step's inputs from the pairs' indices and labels); the seconds it took
    and the pairs trained."""
    trained_pairs = 0
    start = time.perf_counter()
    for _ in range(epochs):
        a, b, y = pairs(labels, rng)
        for at in range(0, len(y), batch):
            s = slice(at, at + batch)
            step(*to_batch(a[s], b[s], y[s]))
        trained_pairs += len(y)
    return time.perf_counter() - start, trained_pairs


def print_accuracy(runner, epochs, seconds, trained_pairs, distances, dissimilar):
    """The line of a trained run: test pair accuracy at D > 0.5 and at the best threshold."""
    def accuracy(threshold):
        return float(np.mean((distances > threshold) == (dissimilar == 1)))

    best = max(np.unique(distances), key=accuracy)
    print(json.dumps({**runner, "epochs": epochs, "train_s": seconds,
                      "pairs_per_s": trained_pairs / seconds, "test_pairs": len(dissimilar),
                      "test_acc": accuracy(0.5), "best_threshold": float(best),
                      "test_acc_best_threshold": accuracy(best)}), flush=True)
