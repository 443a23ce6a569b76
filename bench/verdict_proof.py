"""The verdict's proof on simulated markets: does it find the signal where there is one,
and never call a model profitable where there is none?

For each seed: `bookcast simulate --preset P` (or, with --captures, real captures instead),
replay (1 s grid by default), features and labels at one fee, LightGBM and logistic
regression at each horizon for every market, then `bookcast verdict`. Prints, as Markdown,
LightGBM's average precision against the base rate per market and horizon, and how many
verdict rows of each kind say `pays`, `loses`, `inconclusive` or `no trades`.

    python bench/verdict_proof.py --preset default --interval 100ms --seeds 7,8,9
    python bench/verdict_proof.py --preset null --interval 100ms --seeds 1,2,3,4,5
    python bench/verdict_proof.py --fee-bps 0 --window 20 --seeds 0 --captures ../shared/data/captures/binance-*/*.gz

Figures in docs/models.md and docs/backtest.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# This file's folder shares names with the packages: keep it off the import path.
sys.path = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

from backtest.verdict import is_model, run_verdict  # noqa: E402
from bookcast.errors import UserError  # noqa: E402
from bookcast.timeutil import parse_duration_ns  # noqa: E402
from collector.replay import replay_captures  # noqa: E402
from features.build import build_features  # noqa: E402
from models.config import TrainConfig  # noqa: E402
from models.runs import train_run  # noqa: E402

WORDS = ("pays", "loses", "inconclusive", "no trades")


def bookcast() -> str:
    return shutil.which("bookcast") or str(Path(sys.executable).parent / "bookcast")


def simulate_and_build(root: Path, preset: str, seed: int, args: argparse.Namespace
                       ) -> tuple[list[tuple[str, str]], list[int]]:
    """Simulate (or take --captures), replay and build features and labels under `root`;
    returns the (venue, symbol) markets and the horizons (ns). bench/signal_ceiling.py
    shares it, so both benches judge the same rows."""
    if args.captures:
        files = args.captures
    else:
        out = root / "captures"
        subprocess.run([bookcast(), "simulate", "--preset", preset, "--hours", str(args.hours),
                        "--symbols", args.symbols, "--seed", str(seed), "--out", str(out)],
                       check=True, capture_output=True)
        files = sorted(out.rglob("*.jsonl.gz"))
    replay_captures(files, root, interval_ns=parse_duration_ns(args.interval), depth=100)
    horizons = [parse_duration_ns(h) for h in args.horizons.split(",")]
    build_features(root, "default", horizons, fee_bps=args.fee_bps)
    markets = [(v.name.removeprefix("venue="), s.name.removeprefix("symbol="))
               for v in sorted((root / "snapshots").glob("venue=*"))
               for s in sorted(v.glob("symbol=*"))]
    return markets, horizons


def one_seed(root: Path, preset: str, seed: int, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    markets, horizons = simulate_and_build(root, preset, seed, args)
    skill = {}
    for venue, symbol in markets:
        for horizon in horizons:
            for model in args.models.split(","):
                config = TrainConfig(model=model, horizon_ns=horizon, fee_bps=args.fee_bps,
                                     seed=seed, venue=venue, symbol=symbol, window=args.window)
                try:
                    run = train_run(root, config)
                except UserError as exc:  # e.g. a capture too short for the horizon
                    print(f"{venue} {symbol} {model} {horizon / 1e9:g}s skipped: {exc}",
                          file=sys.stderr, flush=True)
                    continue
                if model == "lightgbm":
                    metrics = json.loads((run / "metrics.json").read_text())
                    name = f"{venue} {symbol} {run.name.split('-')[2]}" if len(markets) > 1 else \
                        run.name.split("-")[2]
                    skill[name] = metrics["probability_skill"]
    report = run_verdict(root)
    return {"seed": seed, "skill": skill, "rows": report.rows, "needs": report.needs,
            "seconds": time.monotonic() - started}


def summarise(results: list[dict], preset: str, args: argparse.Namespace) -> None:
    source = (f"captures {', '.join(Path(p).name for p in args.captures)}" if args.captures
              else f"preset `{preset}`, {args.hours:g} h")
    print(f"\n### {source}, {args.interval} grid, labels and rules at "
          f"{args.fee_bps:g} bps: LightGBM average precision / base rate (test split)\n")
    horizons = list(results[0]["skill"])
    print("| seed | " + " | ".join(f"{h} up | {h} down" for h in horizons) + " |")
    print("|---:|" + "---:|---:|" * len(horizons))
    for r in results:
        cells = []
        for h in horizons:
            s = r["skill"][h]
            for side in ("up", "down"):
                ap, base = s[f"average_precision_{side}"], s[f"prevalence_{side}"]
                cells.append(f"{ap:.3f} / {base:.3f} ({ap / base:.2f}x)")
        print(f"| {r['seed']} | " + " | ".join(cells) + " |")
    print(f"\n### {source}: verdict rows by kind (all fees, horizons, executions)\n")
    print("| seed | strategy | " + " | ".join(WORDS) + " | model rows that pay |")
    print("|---:|---|" + "---:|" * len(WORDS) + "---|")
    for r in results:
        for kind, test in (("models", lambda s: is_model(s)),
                           ("random", lambda s: s.startswith("random")),
                           ("imbalance rule", lambda s: s == "imbalance rule"),
                           ("oracle", lambda s: s == "oracle")):
            rows = [x for x in r["rows"] if test(x["strategy"])]
            count = Counter(x["verdict"] for x in rows)
            pays = sorted({f"{x['strategy']} {x['horizon']} {x['execution']} {x['fee_bps']:g}"
                           for x in rows if x["verdict"] == "pays" and kind == "models"})
            print(f"| {r['seed']} | {kind} | " + " | ".join(str(count[w]) for w in WORDS)
                  + f" | {'; '.join(pays) or '-'} |")
    for r in results:
        model_needs = [n for n in r["needs"] if is_model(n["strategy"])]
        if model_needs:
            least = min(model_needs, key=lambda n: n["trades_needed"])
            print(f"\nseed {r['seed']}: {len(model_needs)} inconclusive model rows; the "
                  f"closest to a verdict ({least['strategy']} {least['horizon']} "
                  f"{least['execution']} at {least['fee_bps']:g} bps) needs "
                  f"{least['trades_needed']:,} trades, "
                  f"{least['recorded_hours_needed'] or float('nan'):,.1f} h recorded.")
    print(f"\n{len(results)} seed(s), {sum(r['seconds'] for r in results):.0f} s in all.")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options `simulate_and_build` reads (bench/signal_ceiling.py takes them too)."""
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", default="7")
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--interval", default="1s", help="Snapshot grid of the replay.")
    parser.add_argument("--symbols", default="BTCUSDT")
    parser.add_argument("--horizons", default="1s,10s")
    parser.add_argument("--fee-bps", type=float, default=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_options(parser)
    parser.add_argument("--captures", type=Path, nargs="*", default=None,
                        help="Real capture files instead of a simulation (one seed).")
    parser.add_argument("--models", default="lightgbm,logistic")
    parser.add_argument("--window", type=int, default=TrainConfig.window,
                        help="DeepLOB's input rows; with the feature lookback, the embargo.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep each seed's data here.")
    args = parser.parse_args()
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        name = "captures" if args.captures else f"{args.preset}-seed{seed}"
        folder = (args.keep / name if args.keep
                  else Path(tempfile.mkdtemp(prefix="verdict-proof-")))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            results.append(one_seed(folder, args.preset, seed, args))
            print(f"seed {seed}: {results[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
        finally:
            if args.keep is None:
                shutil.rmtree(folder, ignore_errors=True)
    summarise(results, args.preset, args)


if __name__ == "__main__":
    main()
