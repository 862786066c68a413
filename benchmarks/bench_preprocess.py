"""Benchmark: preprocessing a clicks file of full RSC15 size (33M rows).

Generates (or reuses) a synthetic clicks file, then times read_clicks +
official_split + write_split and prints rows/s, seconds and peak RSS.

    python benchmarks/bench_preprocess.py                 # full size, cached in /tmp
    python benchmarks/bench_preprocess.py --scale 0.25    # a quarter of it
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

from gru4rec_repro.data import synthetic
from gru4rec_repro.data.clicks import read_clicks
from gru4rec_repro.split import official_split, write_split

RSC15_SESSIONS = 9_249_729
RSC15_ITEMS = 52_739
RSC15_DAYS = 183


def peak_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return kb / 1024**2 if sys.platform != "darwin" else kb / 1024**3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of RSC15's sessions")
    parser.add_argument("--workdir", default="/tmp/gru4rec_repro_bench")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.workdir)
    n_sessions = int(RSC15_SESSIONS * args.scale)
    clicks_path = work / f"synthetic-{n_sessions}-seed{args.seed}.dat"
    if not clicks_path.exists():
        t = time.perf_counter()
        summary = synthetic.generate(clicks_path, n_sessions=n_sessions, n_items=RSC15_ITEMS,
                                     n_days=RSC15_DAYS, seed=args.seed)
        gen_s = time.perf_counter() - t
        print(f"generate: {summary['events']:,} rows, {clicks_path.stat().st_size / 1e9:.2f} GB in "
              f"{gen_s:.1f} s ({summary['events'] / gen_s:,.0f} rows/s), peak RSS {peak_rss_gb():.2f} GB")
    else:
        print(f"reusing {clicks_path}")
    t0 = time.perf_counter()
    clicks = read_clicks(clicks_path)
    t1 = time.perf_counter()
    rows = len(clicks)
    print(f"read_clicks: {rows:,} rows in {t1 - t0:.1f} s ({rows / (t1 - t0):,.0f} rows/s), "
          f"peak RSS {peak_rss_gb():.2f} GB")
    splits = official_split(clicks, source=clicks_path)
    del clicks
    t2 = time.perf_counter()
    print(f"official_split: {t2 - t1:.1f} s ({rows / (t2 - t1):,.0f} rows/s), peak RSS {peak_rss_gb():.2f} GB")
    manifest = write_split(splits, work / "split")
    t3 = time.perf_counter()
    print(f"write_split (parquet + tsv + sha256): {t3 - t2:.1f} s, peak RSS {peak_rss_gb():.2f} GB")
    for name, s in manifest["splits"].items():
        print(f"  {name}: {s['events']:,} events, {s['sessions']:,} sessions, {s['items']:,} items")
    print(f"TOTAL read+split+write: {t3 - t0:.1f} s for {rows:,} rows ({rows / (t3 - t0):,.0f} rows/s), "
          f"peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
