"""What the GRU4Rec benchmarks share: the published settings and the session data.

``bench_gru4rec_torch.py``, ``bench_gru4rec_keras.py``, ``bench_vs_authors.py``
and ``gpu_check.py`` import this, so their numbers are for the same data and
the same hyperparameters. ``python benchmarks/rsc15_like.py`` prints the shape
of the generated data next to RSC15's (SPEC.md section 1).
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

#: The published RSC15 settings of SPEC.md section 4 (one layer of 100, batch
#: 32), in the official PyTorch code's key spellings so that the authors' code
#: takes them as they are (``AUTHORS_SKIP`` lists the ones it lacks).
SETTINGS = {
    # official PyTorch paramfiles/rsc15_xe_shared_100_best.py
    "xe": dict(loss="cross-entropy", constrained_embedding=True, embedding=0, elu_param=0.0, layers=[100],
               batch_size=32, dropout_p_embed=0.0, dropout_p_hidden=0.4, learning_rate=0.2, momentum=0.2,
               n_sample=2048, sample_alpha=0.5, bpreg=0.0, logq=1.0),
    # Theano param_samples/rsc15_bpr-max_constrained.py (final_act elu-0.5)
    "bprmax": dict(loss="bpr-max", constrained_embedding=True, embedding=0, elu_param=0.5, layers=[100],
                   batch_size=32, dropout_p_embed=0.0, dropout_p_hidden=0.0, learning_rate=0.2, momentum=0.1,
                   n_sample=2048, sample_alpha=0.0, bpreg=0.5, logq=0.0),
    # Theano param_samples/rsc15_cross-entropy.py (one-hot input, 2018)
    "xe-onehot": dict(loss="cross-entropy", constrained_embedding=False, embedding=0, elu_param=0.0,
                      layers=[100], batch_size=32, dropout_p_embed=0.0, dropout_p_hidden=0.3,
                      learning_rate=0.1, momentum=0.7, n_sample=2048, sample_alpha=0.0, logq=0.0),
    # Theano param_samples/rsc15_bpr-max.py (one-hot input)
    "bprmax-onehot": dict(loss="bpr-max", constrained_embedding=False, embedding=0, elu_param=0.5,
                          layers=[100], batch_size=32, dropout_p_embed=0.0, dropout_p_hidden=0.0,
                          learning_rate=0.2, momentum=0.3, n_sample=2048, sample_alpha=0.0, bpreg=1.0),
    # the 2016 TOP1 setting (Theano examples/rsc15/run_rsc15.py, commented out there)
    "top1-2016": dict(loss="top1", final_act="tanh", constrained_embedding=False, embedding=0, layers=[100],
                      batch_size=50, dropout_p_hidden=0.5, learning_rate=0.01, momentum=0.0, n_sample=0,
                      time_sort=False),
}

#: Settings the authors' PyTorch code cannot run (it has cross-entropy and BPR-max only).
AUTHORS_SKIP = {"top1-2016": "the official PyTorch code has no TOP1 loss (gru4rec_pytorch.py, set_loss_function)"}

#: Share of sessions by length on RSC15 after the official preprocessing (SPEC.md section 1).
#: 6-10 hold 0.14 and 11-30 hold 0.045, each block decaying by 0.8 a step: mean length 4.04.
LENGTH_SHARES = {2: 0.41, 3: 0.195, 4: 0.12, 5: 0.07,
                 **{k: 0.14 * 0.8 ** (k - 6) / sum(0.8 ** i for i in range(5)) for k in range(6, 11)},
                 **{k: 0.045 * 0.8 ** (k - 11) / sum(0.8 ** i for i in range(20)) for k in range(11, 31)}}

#: Item popularity ~ 1 / (rank + q)^s with q = POP_OFFSET * n_items / 37,000. On 37k items
#: the generated data's top 1% hold 42% of the events and the top 10% hold 78% (RSC15:
#: 41% and 79%, SPEC.md section 1).
POP_EXPONENT, POP_OFFSET = 1.4, 150.0
#: Share of transitions that repeat the previous item (SPEC.md section 1: 15-26%).
P_REPEAT = 0.2
#: Sessions of every benchmark's default data: at 100,000 sessions over 37,000 items
#: the top 1% of the items that occur hold 39% of the events and the top 10% 75%, as on
#: RSC15; with fewer sessions the rare items fill the catalogue and the curve is flatter
#: (20,000 sessions: 23% and 50%).
RSC15_SESSIONS = 100_000
#: Catalogue sizes of the side-by-side cases (``bench_vs_authors.py --items``).
#: 3,000 items: the size of the public 100k-session RSC15 sample (issue 19), the
#: small-catalogue case where per-step fixed costs dominate; 37,000: full RSC15's
#: training split (35,212 of them occur in 100,000 sessions). Both come from the
#: same generator: the session lengths (LENGTH_SHARES) and repeats (P_REPEAT) do not
#: depend on the catalogue, and the popularity offset grows with it (POP_OFFSET), so
#: the top 1% and top 10% of the catalogue hold the same shares at either size. At
#: 3,000 items and 100,000 sessions: mean length 4.03, share of length 2 0.42, top 1%
#: 43% of the events, top 10% 81%, 21% repeats (RSC15: 4.0, 0.39-0.43, 41%, 79%,
#: 15-26%); 25,000 sessions give 42% and 80% over 2,974 items
#: (``python benchmarks/rsc15_like.py --items 3000 --sessions 100000 25000``).
CATALOGUES = (3000, 37_000)


def synthetic_sessions(n_items: int, n_sessions: int, seed: int = 0) -> pd.DataFrame:
    """Sessions shaped like RSC15: its session lengths, its popularity curve and
    its share of immediate repeats; items otherwise independent of each other."""
    rng = np.random.default_rng(seed)
    lengths = np.array(list(LENGTH_SHARES))
    shares = np.array(list(LENGTH_SHARES.values()))
    length = rng.choice(lengths, size=n_sessions, p=shares / shares.sum())
    popularity = 1.0 / (np.arange(1, n_items + 1) + POP_OFFSET * n_items / 37_000) ** POP_EXPONENT
    n_events = int(length.sum())
    items = rng.permutation(n_items)[rng.choice(n_items, size=n_events, p=popularity / popularity.sum())]
    k = min(n_items, n_events)
    items[rng.choice(n_events, size=k, replace=False)] = np.arange(k)  # every item occurs when there is room
    starts = np.r_[0, np.cumsum(length)[:-1]]
    repeat = rng.random(n_events) < P_REPEAT
    repeat[starts] = False
    # a repeated position takes the item of the last position before it that is not a repeat
    source = np.maximum.accumulate(np.where(repeat, 0, np.arange(n_events)))
    items = items[source]
    session = np.repeat(np.arange(n_sessions), length)
    time_ = np.repeat(np.sort(rng.uniform(0, 86400 * 30, n_sessions)), length) + np.concatenate(
        [np.arange(k) * 60.0 for k in length])
    return pd.DataFrame({"SessionId": session.astype(np.int64), "ItemId": items.astype(np.int64) + 1,
                         "Time": time_})


def shape_report(df: pd.DataFrame) -> str:
    """The statistics of SPEC.md section 1 that ``synthetic_sessions`` imitates, measured on ``df``."""
    length = df.groupby("SessionId").size().to_numpy()
    counts = np.sort(df["ItemId"].value_counts().to_numpy())[::-1]
    share = np.cumsum(counts) / counts.sum()
    same = df["SessionId"].to_numpy()[1:] == df["SessionId"].to_numpy()[:-1]
    rep = (df["ItemId"].to_numpy()[1:] == df["ItemId"].to_numpy()[:-1])[same].mean()
    return (f"{len(length):,} sessions, {len(df):,} events, {len(counts):,} items; session length mean "
            f"{length.mean():.2f}, median {np.median(length):.0f}, share of length 2 {np.mean(length == 2):.2f}; "
            f"top 1% of items hold {share[max(1, len(counts) // 100) - 1]:.0%} of events, top 10% "
            f"{share[max(1, len(counts) // 10) - 1]:.0%}; {rep:.0%} of transitions repeat the previous item")


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The options both benchmarks take (same defaults, so their numbers line up)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--items", type=int, nargs="+", default=[3000, 37000])
    ap.add_argument("--sessions", type=int, default=RSC15_SESSIONS,
                    help="training sessions (at least 10 per measured mini-batch)")
    ap.add_argument("--settings", nargs="+", default=["xe", "bprmax"], choices=sorted(SETTINGS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    return ap


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the shape of the generated data next to RSC15's")
    ap.add_argument("--items", type=int, nargs="+", default=list(CATALOGUES))
    ap.add_argument("--sessions", type=int, nargs="+", default=[RSC15_SESSIONS])
    args = ap.parse_args()
    for n_items in args.items:
        for n_sessions in args.sessions:
            print(f"{n_items:,} items: " + shape_report(synthetic_sessions(n_items, n_sessions)))
    print("RSC15 (SPEC.md section 1): session length mean about 4.0, median 3, share of length 2 0.39-0.43; "
          "top 1% of items hold 41% of events, top 10% 79%; 15-26% of transitions repeat the previous item")
