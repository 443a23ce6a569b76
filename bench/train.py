"""Training speed: LightGBM fit time on 1M rows x 60 features, DeepLOB samples/s.

    .venv/bin/python bench/train.py [--rows 1000000] [--device auto|cpu|cuda]
                                    [--batch-size 256] [--deeplob-batches 20]

Anchors measured in the same run: LightGBM against a fixed 100-round budget on the same
machine is reported as rows x rounds per second; DeepLOB against the 4.3k samples/s the
authors' notebook reached on its GPU (Zhang, Zohren & Roberts 2019), as a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

# bench/ holds features.py (another benchmark): put the project first so `features` is
# the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEEPLOB_AUTHORS_SAMPLES_PER_S = 4_300.0


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


def bench_deeplob(device_name: str, batch_size: int, batches: int) -> dict[str, float | str]:
    from models.nets import DeepLOB
    from models.train import choose_device
    from models.train import device_name as describe

    device = choose_device(device_name)
    net = DeepLOB(levels=10).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, 100, 40)
    y = torch.randint(0, 3, (batch_size,))
    if device.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()

    def step() -> None:
        xb, yb = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                            enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(net(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: allocator, cuDNN algorithm choice
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"device": describe(device), "samples_per_s": batch_size * batches / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--deeplob-batches", type=int, default=20)
    parser.add_argument("--skip-lightgbm", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}")
    if not args.skip_lightgbm:
        lgbm = bench_lightgbm(args.rows, args.features, args.rounds)
        print(f"LightGBM multiclass fit, {args.rows:,} rows x {args.features} features, "
              f"{args.rounds} rounds: {lgbm['seconds']:.1f} s "
              f"({lgbm['rows_rounds_per_s'] / 1e6:.2f} M row-rounds/s)")
    dl = bench_deeplob(args.device, args.batch_size, args.deeplob_batches)
    ratio = dl["samples_per_s"] / DEEPLOB_AUTHORS_SAMPLES_PER_S
    print(f"DeepLOB training (T=100 x 40, batch {args.batch_size}) on {dl['device']}: "
          f"{dl['samples_per_s']:,.0f} samples/s = {ratio:.2f}x the authors' "
          f"{DEEPLOB_AUTHORS_SAMPLES_PER_S:,.0f} samples/s GPU figure")


if __name__ == "__main__":
    main()
