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
import os

import numpy as np

from peer_common import load_digits, pairs, print_accuracy, split, time_steps, train_epochs

BATCH = 64


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
    images = images[..., None]
    train, test = split(labels, rng)
    train_images, test_images = images[train], images[test]
    threads = args.threads or os.cpu_count()
    runner = {"backend": "keras-tensorflow-cpu", "runner": "python", "threads": threads,
              "tensorflow": tf.__version__, "keras": keras.__version__}

    if args.steps:
        a, b, y = pairs(labels[train], rng)

        def batches(index):
            at = slice(index * BATCH, (index + 1) * BATCH)
            return train_images[a[at]], train_images[b[at]], y[at]

        time_steps(lambda *batch: train_step(*batch).numpy(), batches, args.steps, runner, BATCH)

    if args.epochs:
        fit = int(len(train) * 0.8)
        seconds, trained_pairs = train_epochs(
            train_step, lambda a, b, y: (train_images[a], train_images[b], y),
            labels[train][:fit], args.epochs, BATCH, rng)
        a, b, y = pairs(labels[test], rng)
        d = np.concatenate([distance(test_images[a[s]], test_images[b[s]]).numpy()
                            for s in (slice(i, i + 512) for i in range(0, len(y), 512))])
        print_accuracy(runner, args.epochs, seconds, trained_pairs, d, y)


if __name__ == "__main__":
    main()
