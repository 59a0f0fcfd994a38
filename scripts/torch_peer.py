#!/usr/bin/env python3
"""The GPU peer of our benchmark: our job in PyTorch, on a GPU (or the CPU).

The job of keras_peer.py (the same digits, tower, contrastive loss as the formula, Adam at 1e-3,
pairs by our rule drawn by numpy), in PyTorch with channels-first images as ours. Each timed step
reads its loss back (`.item()`), as our benchmark does, so a GPU's queued work is timed to its
end. scripts/gpu-check.sh runs it beside our command line when PyTorch is installed. Not part
of the tests.

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy
    /tmp/torch/bin/python scripts/torch_peer.py [--device cuda] [--batch 64] [--steps 30]
        [--threads N] [--epochs 0]

--steps prints a line with the fields of `cargo run --release --example bench_steps`; --epochs
N > 0 then trains N epochs on 80 % of the 8,000 training digits and prints test pair accuracy
on 4,000 test pairs of the 2,000 held-out digits.
"""

import argparse

import numpy as np

from peer_common import (WARMUP, load_digits, pairs, print_accuracy, split, time_steps,
                         train_epochs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--batch", type=int, default=64, help="pairs per step")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0: PyTorch's default")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch
    from torch import nn

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)

    # Keras's Dense and Conv2D initialise with Glorot uniform, PyTorch with Kaiming uniform: the
    # speed does not depend on it, and both learn this job.
    tower = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(),
    ).to(device)
    optimizer = torch.optim.Adam(tower.parameters(), lr=1e-3)

    def distance(a, b):
        # Both sides in one pass through the tower, as ours does.
        embedded = tower(torch.cat([a, b]))
        left, right = embedded[: len(a)], embedded[len(a):]
        return torch.sqrt(((left - right) ** 2).sum(dim=1) + 1e-12)

    def train_step(a, b, y):
        d = distance(a, b)
        loss = ((1 - y) * d**2 + y * torch.clamp(1.0 - d, min=0.0) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    images, labels = load_digits()
    images = torch.from_numpy(images[:, None]).to(device)
    train, test = split(labels, rng)
    runner = {"backend": f"pytorch-{device.type}", "runner": "python", "device": str(device),
              "torch": torch.__version__}
    if device.type == "cuda":
        runner["gpu"] = torch.cuda.get_device_name(device)
    else:
        runner["threads"] = torch.get_num_threads()

    def on_device(indices):
        return images[torch.from_numpy(train[indices]).to(device)]

    def to_batch(a, b, y):
        return on_device(a), on_device(b), torch.from_numpy(y).to(device)

    if args.steps:
        a, b, y = pairs(labels[train], rng)
        # Enough pairs for every timed step at large batches: the epoch's pairs, repeated.
        repeats = -(-(WARMUP + args.steps) * args.batch // len(y))
        a, b, y = np.tile(a, repeats), np.tile(b, repeats), np.tile(y, repeats)

        def batches(index):
            at = slice(index * args.batch, (index + 1) * args.batch)
            return to_batch(a[at], b[at], y[at])

        time_steps(train_step, batches, args.steps, runner, args.batch)

    if args.epochs:
        fit = int(len(train) * 0.8)
        seconds, trained_pairs = train_epochs(
            train_step, to_batch, labels[train][:fit], args.epochs, args.batch, rng)
        a, b, y = pairs(labels[test], rng)
        test_images = images[torch.from_numpy(test).to(device)]
        a, b = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        with torch.no_grad():
            d = torch.cat([distance(test_images[a[s]], test_images[b[s]])
                           for s in (slice(i, i + 512) for i in range(0, len(y), 512))])
        print_accuracy(runner, args.epochs, seconds, trained_pairs, d.cpu().numpy(), y)


if __name__ == "__main__":
    main()
