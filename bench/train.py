"""Training speed: LightGBM fit time on 1M rows x 60 features, DeepLOB samples/s.

    .venv/bin/python bench/train.py [--rows 1000000] [--device auto|cpu|cuda]
        [--batch-size 256] [--samples N] [--epochs 3] [--compile] [--deterministic]
        [--skip-lightgbm]

DeepLOB runs the project's real training loop (`models.train.train_network`: sampler,
windows cut from book rows, loss, clipping, AdamW, a validation pass each epoch), not one
reused batch; it prints samples/s for each epoch with the device.

Anchors measured in the same run: LightGBM against a fixed 100-round budget on the same
machine is reported as rows x rounds per second; DeepLOB against the 4.3k samples/s the
authors' notebook reached on its GPU (Zhang, Zohren & Roberts 2019), as a ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# bench/ holds features.py (another benchmark): put the project first so `features` is
# the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEEPLOB_AUTHORS_SAMPLES_PER_S = 4_300.0
TARGET_GPU_SAMPLES_PER_S = 50_000.0  # issue 17, bf16 on one H100-class GPU


def bench_lightgbm(rows: int, features: int, rounds: int) -> dict[str, float]:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    signal = X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=2.0, size=rows)
    y = np.digitize(signal, np.quantile(signal, [0.05, 0.95]))  # 5% down, 90% flat, 5% up
    model = lgb.LGBMClassifier(objective="multiclass", n_estimators=rounds, num_leaves=15,
                               learning_rate=0.05, class_weight="balanced",
                               n_jobs=os.cpu_count(), verbose=-1, force_row_wise=True)
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_rounds_per_s": rows * rounds / seconds}


def bench_deeplob(device_name: str, batch_size: int, samples: int | None, epochs: int,
                  compile_net: bool, deterministic: bool) -> dict[str, Any]:
    """DeepLOB through the project's own training loop (`models.train.train_network`):
    book rows in a SequenceView (100-snapshot windows, prices relative to the decision mid),
    the sampler, the loss, clipping, AdamW, and a validation pass every epoch; on CUDA the
    rows sit on the device and autocast runs in bf16. Samples/s per epoch counts the
    training steps up to the epoch's one device sync, validation excluded."""
    from models.config import TrainConfig
    from models.dataset import SequenceView
    from models.nets import DeepLOB
    from models.train import choose_device, train_network
    from models.train import device_name as describe

    device = choose_device(device_name)
    if samples is None:
        samples = 200_000 if device.type == "cuda" else 512
    window, levels = 100, 10
    rng = np.random.default_rng(0)
    n_rows = samples + window
    mid = 60_000.0 + np.cumsum(rng.normal(0.0, 2.0, n_rows))
    book = np.empty((n_rows, levels * 4), dtype=np.float32)
    steps = 0.5 + np.arange(levels)
    book[:, 0::4] = steps / mid[:, None] * 1e4  # ask px, bps from the mid
    book[:, 1::4] = rng.uniform(0.0, 2.0, (n_rows, levels))  # ask size
    book[:, 2::4] = -book[:, 0::4]  # bid px, bps
    book[:, 3::4] = rng.uniform(0.0, 2.0, (n_rows, levels))  # bid size
    offset_columns = np.zeros(levels * 4, bool)
    offset_columns[0::2] = True
    offset = rng.normal(0.0, 0.1, n_rows).astype(np.float32)
    ends = np.arange(window - 1, n_rows)
    train = SequenceView(book, ends[:samples], window, offset, offset_columns)
    val = SequenceView(book, ends[-max(samples // 10, 1):], window, offset, offset_columns)
    y = rng.choice(np.array([-1, 0, 1]), samples, p=[0.1, 0.8, 0.1])
    y_val = rng.choice(np.array([-1, 0, 1]), len(val), p=[0.1, 0.8, 0.1])
    config = TrainConfig(model="deeplob", epochs=epochs, batch_size=batch_size, window=window,
                         levels=levels, device=device.type, patience=epochs + 1,
                         compile=compile_net, deterministic=deterministic)
    net = DeepLOB(levels=levels)
    history = train_network(net, train, y, val, y_val, config)
    rates = [e["train_samples"] / e["train_seconds"] for e in history.epochs]
    return {"device": describe(device), "samples": samples, "rates": rates,
            "first_epoch_s": history.epochs[0]["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=None,
                        help="DeepLOB training windows per epoch (default 200,000 on CUDA, "
                             "512 on a CPU)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--deterministic", action="store_true",
                        help="fixed cuDNN algorithms instead of autotuning")
    parser.add_argument("--skip-lightgbm", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}")
    if not args.skip_lightgbm:
        lgbm = bench_lightgbm(args.rows, args.features, args.rounds)
        print(f"LightGBM multiclass fit, {args.rows:,} rows x {args.features} features, "
              f"{args.rounds} rounds: {lgbm['seconds']:.1f} s "
              f"({lgbm['rows_rounds_per_s'] / 1e6:.2f} M row-rounds/s)")
    dl = bench_deeplob(args.device, args.batch_size, args.samples, args.epochs, args.compile,
                       args.deterministic)
    rates = dl["rates"]
    steady = statistics.median(rates[1:]) if len(rates) > 1 else rates[0]
    print(f"DeepLOB training loop (T=100 x 40, batch {args.batch_size}, {dl['samples']:,} "
          f"windows an epoch, {'compiled' if args.compile else 'eager'}, "
          f"{'deterministic' if args.deterministic else 'cuDNN autotuned'}) on {dl['device']}:")
    print("  samples/s per epoch: " + ", ".join(f"{r:,.0f}" for r in rates)
          + f" (the first includes warm-up{' and compilation' if args.compile else ''}: "
          f"{dl['first_epoch_s']:.1f} s)")
    print(f"  steady: {steady:,.0f} samples/s = {steady / DEEPLOB_AUTHORS_SAMPLES_PER_S:.2f}x the "
          f"authors' {DEEPLOB_AUTHORS_SAMPLES_PER_S:,.0f} samples/s GPU figure; target on one "
          f"H100-class GPU in bf16: {TARGET_GPU_SAMPLES_PER_S:,.0f}")

if __name__ == "__main__":
    main()
