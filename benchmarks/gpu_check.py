"""GPU check of gru4rec_torch (well under 5 minutes on one GPU).

Prints where the parameters, optimizer state, sample store and hidden state
live, trains a short while and evaluates on CUDA, and prints mini-batches/s
at batch 32 with 2048 extra samples (target: 1,250+/s, the original Theano
code's speed) and events/s::

    python benchmarks/gpu_check.py              # on a GPU machine
    python benchmarks/gpu_check.py --device cpu # the same checks on CPU, small
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gru4rec_torch import SETTINGS, bench, synthetic_sessions  # noqa: E402

from implementations.gru4rec_torch.data import item_index, session_data  # noqa: E402
from implementations.gru4rec_torch.model import GRU4Rec  # noqa: E402
from implementations.gru4rec_torch.train import train_epoch  # noqa: E402


def placement(model: GRU4Rec) -> None:
    devices = {name: str(t.device) for name, t in model.net.named_parameters()}
    devices.update({f"optimizer.acc.{k}": str(v.device) for k, v in model.optimizer.acc.items()})
    devices["hidden_state"] = str(model.H[0].device)
    devices["log_support"] = str(model.log_support.device)
    if model.store is not None:
        devices["sample_store"] = str(model.next_negatives().device)
    for name, dev in devices.items():
        print(f"  {name:<28} {dev}")
    wanted = model.device.type
    wrong = [n for n, d in devices.items() if not d.startswith(wanted)]
    if wrong:
        raise SystemExit(f"FAIL: not on {wanted}: {wrong}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--items", type=int, default=37000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of torch")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA device visible to torch (torch %s): nothing to check here. "
              "Run on a GPU machine, or pass --device cpu to exercise the script." % torch.__version__)
        raise SystemExit(2)
    small = args.device == "cpu"
    n_items = min(args.items, 3000) if small else args.items
    steps = min(args.steps, 200) if small else args.steps
    if not small:
        print("GPU:", torch.cuda.get_device_name(0))
    t0 = time.perf_counter()
    train = synthetic_sessions(n_items, 20 * n_items if not small else 4000, seed=0)
    test = synthetic_sessions(n_items, 2000 if not small else 200, seed=1)
    test["SessionId"] += 10 ** 7
    item_ids = item_index(train)
    support = pd.Series(train["ItemId"].to_numpy()).value_counts().reindex(item_ids).to_numpy()
    data = session_data(train, item_ids)

    print("placement (tuned cross-entropy setting):")
    model = GRU4Rec(len(item_ids), {**SETTINGS["xe"], "n_epochs": 1,
                                    "sample_store_size": 1_000_000 if small else 10_000_000},
                    seed=1, support=support, device=args.device)
    model.item_ids = item_ids
    placement(model)

    print("one epoch of training:")
    te = time.perf_counter()
    loss, events, mb = train_epoch(model, data, progress=False)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - te
    print(f"  loss {loss:.4f}, {events} events, {mb} mini-batches, {dt:.1f} s "
          f"({events / dt:,.0f} events/s, {mb / dt:,.1f} mini-batches/s)")
    assert np.isfinite(loss)

    print("evaluation (all items, eval_batch_size 512):")
    te = time.perf_counter()
    ranks = model.evaluate(test)
    dt = time.perf_counter() - te
    print(f"  {len(ranks)} predictions in {dt:.1f} s; recall@20 {(ranks.higher + ranks.ties < 20).mean():.4f} "
          "(conservative; synthetic data without structure: popularity level is expected)")

    print(f"speed at batch 32, 2048 samples, {n_items} items ({steps} steps after warm-up):")
    for setting in ("xe", "bprmax"):
        r = bench(setting, train, steps, 200 if not small else 20, args.device)
        flag = "" if small else ("  OK (>= 1,250)" if r["mbatches_per_s"] >= 1250 else "  BELOW 1,250 target")
        print(f"  {setting:>7}: {r['mbatches_per_s']:,.1f} mini-batches/s, {r['events_per_s']:,.0f} events/s{flag}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
