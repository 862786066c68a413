"""What the two GRU4Rec benchmarks share: the tuned settings and the session data.

Both ``bench_gru4rec_torch.py`` and ``bench_gru4rec_keras.py`` import this, so
their numbers are for the same data and the same hyperparameters.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

#: The tuned RSC15 settings of SPEC.md section 4 (one layer of 100, batch 32).
SETTINGS = {
    "xe": dict(loss="cross-entropy", final_act="linear", constrained_embedding=True,
               dropout_p_hidden=0.4, learning_rate=0.2, momentum=0.2, n_sample=2048,
               sample_alpha=0.5, logq=1.0),
    "bprmax": dict(loss="bpr-max", final_act="linear", constrained_embedding=True,
                   learning_rate=0.2, momentum=0.1, bpreg=0.5, n_sample=2048),
    "bprmax-onehot": dict(loss="bpr-max", final_act="elu", elu_param=0.5, constrained_embedding=False,
                          embedding=0, learning_rate=0.2, momentum=0.3, sample_alpha=0.0, bpreg=1.0,
                          n_sample=2048),
    "top1-2016": dict(loss="top1", final_act="tanh", constrained_embedding=False, embedding=0,
                      batch_size=50, dropout_p_hidden=0.5, learning_rate=0.01, n_sample=0),
}

#: Share of sessions by length on RSC15 after the official preprocessing (SPEC.md section 1).
LENGTH_SHARES = {2: 0.41, 3: 0.195, 4: 0.12, 5: 0.07, **{k: 0.14 / 5 for k in range(6, 11)},
                 **{k: 0.065 / 20 for k in range(11, 31)}}


def synthetic_sessions(n_items: int, n_sessions: int, seed: int = 0) -> pd.DataFrame:
    """Sessions with RSC15-like lengths and heavy-tailed (Zipf 1.0) item popularity."""
    rng = np.random.default_rng(seed)
    lengths = np.array(list(LENGTH_SHARES))
    shares = np.array(list(LENGTH_SHARES.values()))
    length = rng.choice(lengths, size=n_sessions, p=shares / shares.sum())
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=int(length.sum()), p=popularity / popularity.sum())
    k = min(n_items, len(items))
    items[:k] = rng.permutation(n_items)[:k]  # every item occurs at least once when there is room
    session = np.repeat(np.arange(n_sessions), length)
    time_ = np.repeat(np.sort(rng.uniform(0, 86400 * 30, n_sessions)), length) + np.concatenate(
        [np.arange(k) * 60.0 for k in length])
    return pd.DataFrame({"SessionId": session.astype(np.int64), "ItemId": items.astype(np.int64) + 1,
                         "Time": time_})


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The options both benchmarks take (same defaults, so their numbers line up)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--items", type=int, nargs="+", default=[3000, 37000])
    ap.add_argument("--settings", nargs="+", default=["xe", "bprmax"], choices=sorted(SETTINGS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    return ap
