"""Training speed of gru4rec_torch on synthetic RSC15-like sessions.

Prints events/s and mini-batches/s of the tuned RSC15 settings (SPEC.md
section 4) for a fixed number of steps after a warm-up::

    python benchmarks/bench_gru4rec_torch.py --threads 2 --items 3000 37000 --steps 2000

Timings are wall-clock on whatever else the machine is doing: say so when
you quote them. Events per CPU-second of this process (printed too) depend
less on other load. On a shared machine, more than one torch thread can be
far slower than one (OpenMP threads spin at every barrier while another
process holds the core); ``OMP_WAIT_POLICY=PASSIVE`` softens that.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from implementations.gru4rec_torch.data import item_index, session_data, session_parallel
from implementations.gru4rec_torch.model import GRU4Rec

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


def bench(setting: str, train: pd.DataFrame, steps: int, warmup: int, device: str) -> dict:
    params = {**SETTINGS[setting], "n_epochs": 1}
    item_ids = item_index(train)
    support = pd.Series(train["ItemId"].to_numpy()).value_counts().reindex(item_ids).to_numpy()
    data = session_data(train, item_ids)
    model = GRU4Rec(len(item_ids), params, seed=1, support=support, device=device)
    dev = model.device
    min_lanes = 2 if model.params["n_sample"] == 0 else 1
    it = session_parallel(data, model.params["batch_size"], min_lanes=min_lanes)
    events = done = 0
    t0 = None
    loss_sum = torch.zeros((), device=dev)
    for i, step in enumerate(it):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0, c0, events = time.perf_counter(), time.process_time(), 0
        if i == warmup + steps:
            break
        if step.keep is not None:
            model.keep_lanes(step.keep)
        if step.reset is not None:
            model.reset_lanes(step.reset)
        loss_sum += model._step(torch.from_numpy(step.in_idx).to(dev), torch.from_numpy(step.out_idx).to(dev),
                                model.next_negatives())
        events += len(step.in_idx)
        done = i + 1 - warmup
    float(loss_sum)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    return {"setting": setting, "items": len(item_ids), "device": str(dev), "threads": torch.get_num_threads(),
            "steps": done, "events_per_s": events / seconds, "mbatches_per_s": done / seconds,
            "events_per_cpu_s": events / cpu_seconds}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--items", type=int, nargs="+", default=[3000, 37000])
    ap.add_argument("--settings", nargs="+", default=["xe", "bprmax"], choices=sorted(SETTINGS))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for n_items in args.items:
        n_sessions = max(20 * n_items, (args.steps + args.warmup) * 40)
        train = synthetic_sessions(n_items, n_sessions)
        for setting in args.settings:
            r = bench(setting, train, args.steps, args.warmup, args.device)
            print(f"{r['setting']:>14} items={r['items']:>6} device={r['device']} threads={r['threads']} "
                  f"steps={r['steps']}: {r['events_per_s']:,.0f} events/s, "
                  f"{r['mbatches_per_s']:,.1f} mini-batches/s ({r['events_per_cpu_s']:,.0f} events per "
                  f"CPU-second of this process)", flush=True)


if __name__ == "__main__":
    main()
