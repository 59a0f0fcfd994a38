#!/usr/bin/env python3
"""The peer of the native benchmark: our job in Keras 3 on TensorFlow's CPU back end.

The same digits (assets/mnist-10k.bin.gz), tower (conv 32 -> pool -> conv 64 -> pool -> dense 128,
ReLU), contrastive loss as the formula (y = 0 similar, y = 1 dissimilar, margin 1), Adam at 1e-3
and batches of 64 pairs. Pairs follow our rule (2 per image and epoch, half similar, dissimilar
partners truly of another class, seeded) but are drawn by numpy, not by src/pairs.rs, so they are
not the same pairs. Not part of the tests.

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu==2.21.0
    /tmp/keras/bin/python scripts/keras_peer.py [--threads 1] [--steps 30] [--epochs 0]

--steps prints a line with the fields of `cargo run --release --example bench_steps` (pairs_per_s
over --steps steps after 3 warm-up steps); --epochs N > 0 then trains N epochs with a 20 %
validation split and prints test pair accuracy on 4,000 test pairs of the 2,000 held-out digits.
"""

import argparse
import gzip
import json
import os
import struct
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64
WARMUP = 3


def load_digits():
    with gzip.open(os.path.join(ROOT, "assets", "mnist-10k.bin.gz")) as f:
        data = f.read()
    assert data[:8] == b"SMNIST01", "not the digits asset"
    count, rows, cols = struct.unpack_from("<IHH", data, 8)
    labels = np.frombuffer(data, np.uint8, count, 16).astype(np.int64)
    pixels = np.frombuffer(data, np.uint8, count * rows * cols, 16 + count)
    images = pixels.reshape(count, rows, cols, 1).astype(np.float32) / 255.0
    return images, labels


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0, help="0: TensorFlow's default (all cores)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    tower = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
    ])
    optimizer = keras.optimizers.Adam(1e-3)

    def distance(a, b):
        return tf.sqrt(tf.reduce_sum(tf.square(tower(a) - tower(b)), axis=1) + 1e-12)

    @tf.function(jit_compile=False)
    def train_step(a, b, y):
        with tf.GradientTape() as tape:
            d = distance(a, b)
            loss = tf.reduce_mean((1 - y) * tf.square(d) + y * tf.square(tf.maximum(1.0 - d, 0.0)))
        grads = tape.gradient(loss, tower.trainable_variables)
        optimizer.apply_gradients(zip(grads, tower.trainable_variables))
        return loss

    images, labels = load_digits()
    split = rng.permutation(len(labels))
    train, test = split[:8000], split[8000:]
    train_images, test_images = images[train], images[test]
    threads = args.threads or os.cpu_count()
    runner = {"backend": "keras-tensorflow-cpu", "runner": "python", "threads": threads,
              "tensorflow": tf.__version__, "keras": keras.__version__}

    if args.steps:
        a, b, y = pairs(labels[train], rng)
        ends = []
        start = time.perf_counter()
        for step in range(WARMUP + args.steps):
            at = slice(step * BATCH, (step + 1) * BATCH)
            train_step(train_images[a[at]], train_images[b[at]], y[at]).numpy()
            ends.append(time.perf_counter() - start)
        step_ms = sorted(1000 * (t1 - t0) for t0, t1 in zip(ends[WARMUP - 1:], ends[WARMUP:]))
        print(json.dumps({**runner, "batch": BATCH, "steps": args.steps,
                          "pairs_per_s": args.steps * BATCH / (sum(step_ms) / 1000),
                          "ms_per_step_median": step_ms[len(step_ms) // 2],
                          "ms_per_step_min": step_ms[0], "ms_per_step_max": step_ms[-1],
                          "first_step_ms": 1000 * ends[0]}), flush=True)

    if args.epochs:
        fit = int(len(train) * 0.8)
        trained_pairs = 0
        start = time.perf_counter()
        for _ in range(args.epochs):
            a, b, y = pairs(labels[train][:fit], rng)
            for at in range(0, len(y), BATCH):
                s = slice(at, at + BATCH)
                train_step(train_images[a[s]], train_images[b[s]], y[s])
            trained_pairs += len(y)
        seconds = time.perf_counter() - start
        a, b, y = pairs(labels[test], rng)
        d = np.concatenate([distance(test_images[a[s]], test_images[b[s]]).numpy()
                            for s in (slice(i, i + 512) for i in range(0, len(y), 512))])

        def accuracy(threshold):
            return float(np.mean((d > threshold) == (y == 1)))

        best = max(np.unique(d), key=accuracy)
        print(json.dumps({**runner, "epochs": args.epochs, "train_s": seconds,
                          "pairs_per_s": trained_pairs / seconds, "test_pairs": len(y),
                          "test_acc": accuracy(0.5), "best_threshold": float(best),
                          "test_acc_best_threshold": accuracy(best)}), flush=True)


if __name__ == "__main__":
    main()
