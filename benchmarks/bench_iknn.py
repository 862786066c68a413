"""Benchmark: Item-KNN fit and scoring on random session data of RSC15's shape, built in memory with numpy (for benchmarks).

Not a model of user behaviour: only the sizes and the marginal statistics that
drive the cost of the baselines (SPEC.md sections 1-2): 31,637,239 training
events in 7,966,257 sessions over 37,483 items; session lengths with RSC15's
distribution (41% of length 2, mean about 4); heavy-tailed item popularity
(the top 1% of items hold about 40% of the events, every item at least 5);
20% of transitions repeat the previous item. Items are drawn independently
otherwise, which spreads co-occurrences more widely than real, topical
sessions do (a pessimistic case for Item-KNN's cost).

    python benchmarks/bench_iknn.py              # full RSC15 size
    python benchmarks/bench_iknn.py --scale 0.05 # a quick try
    python benchmarks/bench_iknn.py --cooc symmetric  # the product of counts (the old default)

Prints the fit time (wall and CPU), the peak resident memory (``getrusage`` ru_maxrss, reset
before the fit where Linux allows), and the time to rank RSC15's 55,898 test
predictions against all items.
"""
from __future__ import annotations

import argparse
import gc
import logging
import resource
import time

import numpy as np
import pandas as pd

from gru4rec_repro.evaluation import metrics_from_ranks
from implementations.baselines.common import PredictionEvents, rank_events
from implementations.baselines.iknn import COOC, ItemKNN

TRAIN_EVENTS = 31_637_239
TRAIN_SESSIONS = 7_966_257
N_ITEMS = 37_483
TEST_EVENTS = 71_222
TEST_SESSIONS = 15_324

#: (length, probability) of session lengths 2..10; longer sessions share the rest.
LENGTH_SHARES = {2: 0.41, 3: 0.195, 4: 0.12, 5: 0.07, 6: 0.045, 7: 0.033, 8: 0.025, 9: 0.02, 10: 0.017}
ZIPF_EXPONENT = 0.9
REPEAT_SHARE = 0.2


def session_lengths(rng: np.random.Generator, n_sessions: int, n_events: int) -> np.ndarray:
    """Lengths with RSC15's distribution, adjusted to sum to exactly ``n_events``."""
    lengths = np.array(list(LENGTH_SHARES))
    shares = np.array(list(LENGTH_SHARES.values()))
    long = rng.random(n_sessions) >= shares.sum()
    out = rng.choice(lengths, size=n_sessions, p=shares / shares.sum())
    out[long] = 11 + rng.geometric(1 / 8, size=int(long.sum())) - 1
    diff = n_events - int(out.sum())
    while diff != 0:  # spread the difference over random sessions, keeping lengths >= 2
        pick = rng.choice(n_sessions, size=min(abs(diff), n_sessions), replace=False)
        if diff < 0:
            pick = pick[out[pick] > 2]
        out[pick] += np.sign(diff)
        diff = n_events - int(out.sum())
    return out.astype(np.int64)


def item_popularity(n_items: int) -> np.ndarray:
    p = 1.0 / np.arange(1, n_items + 1) ** ZIPF_EXPONENT
    return p / p.sum()


def sessions(rng: np.random.Generator, n_sessions: int, n_events: int, item_ids: np.ndarray,
             first_session_id: int = 1, every_item: bool = True) -> pd.DataFrame:
    """A split of ``n_events`` events in ``n_sessions`` sessions (SessionId, ItemId, Time)."""
    n_items = len(item_ids)
    lengths = session_lengths(rng, n_sessions, n_events)
    items = rng.choice(n_items, size=n_events, p=item_popularity(n_items))
    if every_item:  # every item at least 5 events (the official preprocessing keeps no rarer item)
        items[rng.choice(n_events, size=5 * n_items, replace=False)] = np.repeat(np.arange(n_items), 5)
    starts = np.cumsum(lengths) - lengths
    repeat = rng.random(n_events) < REPEAT_SHARE
    repeat[starts] = False
    source = np.maximum.accumulate(np.where(repeat, 0, np.arange(n_events)))
    items = items[source]
    return pd.DataFrame({
        "SessionId": np.repeat(np.arange(first_session_id, first_session_id + n_sessions, dtype=np.int64), lengths),
        "ItemId": item_ids[items],
        "Time": np.arange(n_events, dtype=np.float64),
    })


def rsc15_like(seed: int = 0, scale: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of RSC15's size times ``scale``; test items all occur in train."""
    rng = np.random.default_rng(seed)
    n_items = max(10, int(N_ITEMS * min(scale * 10, 1.0)))
    item_ids = 214_500_000 + rng.permutation(n_items).astype(np.int64) * 7  # scrambled ids, by popularity
    train = sessions(rng, max(2, int(TRAIN_SESSIONS * scale)), max(4, int(TRAIN_EVENTS * scale)), item_ids)
    test = sessions(rng, TEST_SESSIONS, TEST_EVENTS, item_ids, first_session_id=10**9, every_item=False)
    return train, test


def rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of RSC15's training size (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--neighbors", type=int, default=100)
    parser.add_argument("--cooc", choices=COOC, default="authors",
                        help="co-occurrence definition (implementations/baselines/iknn.py; default authors)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    t0 = time.perf_counter()
    train, test = rsc15_like(args.seed, args.scale)
    print(f"data: {len(train):,} train events, {train.SessionId.nunique():,} sessions, "
          f"{train.ItemId.nunique():,} items; {len(test):,} test events "
          f"({len(test) - test.SessionId.nunique():,} predictions); built in {time.perf_counter() - t0:.1f} s")
    gc.collect()
    before = rss_now_mb()
    reset = reset_peak_rss()
    t0, cpu0 = time.perf_counter(), time.process_time()
    model = ItemKNN(neighbors=args.neighbors, cooc=args.cooc, progress=not args.no_progress).fit(train)
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    peak = peak_rss_mb()
    print(f"iknn fit (cooc {args.cooc}): {fit_s:.1f} s wall, {fit_cpu_s:.1f} s CPU (this process, all threads; "
          f"less sensitive to a busy machine than wall time), {model.sims.nnz:,} kept similarities; "
          f"RSS before fit {before:,.0f} MB (the data), peak RSS {peak:,.0f} MB "
          f"({'during the fit' if reset else 'of the whole process, data building included'}), "
          f"peak - before = {peak - before:,.0f} MB")

    t0 = time.perf_counter()
    events = PredictionEvents.from_test(test, model.item_ids)
    ranks = rank_events(events, lambda rows: model.score_block(events, rows), progress=not args.no_progress)
    score_s = time.perf_counter() - t0
    m = metrics_from_ranks(ranks)["conservative"]
    print(f"iknn scoring: {len(ranks):,} events against {len(model.item_ids):,} items in {score_s:.1f} s "
          f"({len(ranks) / score_s:,.0f} events/s); peak RSS now {peak_rss_mb():,.0f} MB; "
          f"(random data) R@20 {m['recall@20']:.4f}")


if __name__ == "__main__":
    main()
