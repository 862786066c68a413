"""GPU check of both GRU4Rec implementations, as one script (a few minutes on one GPU).

Prints where each implementation keeps its parameters, optimizer state,
sample store and hidden state, then mini-batches/s and events/s of the
published cross-entropy and BPR-max settings at batch 32 with 2048 extra
samples on RSC15-shaped data (``rsc15_like.py``), for PyTorch and, when
TensorFlow is installed, for Keras::

    python benchmarks/gpu_check.py                       # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --steps 100 --items 3000   # the same checks on CPU
    python benchmarks/gpu_check.py --authors /path/to/GRU4Rec_PyTorch_Official   # and side by side

The PyTorch part also trains one short epoch and evaluates on the device,
trains 300 mini-batches from one seed eagerly twice and as CUDA-graph replays
once per setting (cross-entropy, BPR-max, the 2016 TOP1) and compares them
(the graph must land within the spread of the two eager runs), and gives the
speed both ways. With ``--authors`` (a checkout of hidasib/GRU4Rec_PyTorch_Official, never
copied into this project) it then trains one epoch of the authors' code and
of ours per setting on the same device and the same RSC15-shaped data, in
alternating fresh processes (``bench_vs_authors.py``), and prints both
events/s and the ratio.
Exit status 1 when a tensor is not where it should be, a capture failed or
the graph's training differs from the eager one. A run on an H100 is in
``logs/`` (benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rsc15_like import RSC15_SESSIONS, SETTINGS, shape_report, synthetic_sessions  # noqa: E402

LOSSES = ("xe", "bprmax")
#: settings timed: the tuned ones, and the 2016 and one-hot ones the study's plan prices too
SPEED_SETTINGS = LOSSES + ("xe-onehot", "top1-2016")


def torch_placement(model) -> list[str]:
    """Print the device of every tensor of a torch model; return the misplaced ones."""
    devices = {name: str(t.device) for name, t in model.net.named_parameters()}
    devices.update({f"optimizer.acc.{k}": str(v.device) for k, v in model.optimizer.acc.items()})
    devices.update({f"optimizer.velocity.{k}": str(v.device) for k, v in model.optimizer.velocity.items()})
    devices["hidden_state"] = str(model.H[0].device)
    devices["log_support"] = str(model.log_support.device)
    if model.store is not None:
        devices["sample_store"] = str(model.next_negatives().device)
    for name, dev in devices.items():
        print(f"    {name:<30} {dev}")
    return [n for n, d in devices.items() if not d.startswith(model.device.type)]


def check_torch(train: pd.DataFrame, test: pd.DataFrame, args) -> list[str]:
    import torch

    from bench_gru4rec_torch import bench
    from implementations.gru4rec_torch.data import session_data
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.train import train_epoch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"PyTorch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    model, _ = build(train, {**SETTINGS["xe"], "n_epochs": 1}, 1, device)
    print("  placement (cross-entropy setting):")
    wrong = torch_placement(model)
    data = session_data(train.head(args.epoch_events), model.item_ids)
    t0 = time.perf_counter()
    loss, events, steps = train_epoch(model, data, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    print(f"  one short epoch: loss {loss:.4f}, {events:,} events, {steps:,} mini-batches, {dt:.1f} s")
    t0 = time.perf_counter()
    ranks = model.evaluate(test)
    print(f"  evaluation: {len(ranks):,} predictions against all {model.n_items:,} items in "
          f"{time.perf_counter() - t0:.1f} s")
    wrong += graph_vs_eager(train, device, args.graph_steps)
    print(f"  speed, {args.steps} mini-batches after {args.warmup} warm-up (batch 32 with 2048 extra samples; "
          "top1-2016: batch 50, none):")
    for setting in SPEED_SETTINGS:
        for graphs in ((True, False) if device.type == "cuda" else (False,)):
            os.environ["GRU4REC_TORCH_CUDA_GRAPH"] = "1" if graphs else "0"
            r = bench(setting, train, args.steps, args.warmup, str(device))
            how = "CUDA graph" if graphs else "eager"
            print(f"    {setting:>13} {how:>10}: {r['mbatches_per_s']:>8,.1f} mini-batches/s, "
                  f"{r['events_per_s']:>9,.0f} events/s", flush=True)
    os.environ.pop("GRU4REC_TORCH_CUDA_GRAPH", None)
    return [f"torch {w}" for w in wrong]


def graph_vs_eager(train: pd.DataFrame, device, steps: int) -> list[str]:
    """steps.graph_against_eager per setting: ``steps`` mini-batches from one
    seed eagerly twice and as CUDA-graph replays once."""
    from implementations.gru4rec_torch.data import item_index, session_data
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.steps import graph_against_eager

    if device.type != "cuda":
        return []
    wrong = []
    print(f"  CUDA graph against eager steps, {steps} mini-batches from one seed:")
    for setting in LOSSES + ("top1-2016",):
        params = {**SETTINGS[setting], "n_epochs": 1}
        data = session_data(train, item_index(train), time_sort=params.get("time_sort", True))
        r = graph_against_eager(lambda: build(train, params, 3, device)[0], data, steps)
        if not r["captured"]:
            print(f"    {setting}: no graph ({r['failure']})")
            wrong.append(f"{setting} graph capture")
        print(f"    {setting:>9}: loss sum eager {r['eager']:.6f}, again {r['again']:.6f}, graph {r['graph']:.6f}; "
              f"largest weight difference eager-again {r['spread']:.2e}, eager-graph {r['diff']:.2e}: "
              f"{'same' if r['same'] else 'DIFFERENT'}", flush=True)
        if not r["same"]:
            wrong.append(f"{setting} graph differs from eager")
    return wrong


def check_keras(train: pd.DataFrame, args) -> list[str]:
    try:
        import tensorflow as tf
    except ImportError as err:
        print(f"Keras: skipped, TensorFlow is not installed here ({err})")
        return []
    from bench_gru4rec_keras import bench

    from implementations.gru4rec_keras.data import item_index
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.runner import item_support

    gpu = args.device.startswith("cuda")
    if gpu and not tf.config.list_physical_devices("GPU"):
        print(f"Keras: skipped, TensorFlow {tf.__version__} sees no GPU")
        return []
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    device = "/GPU:0" if gpu else "/CPU:0"
    print(f"Keras {tf.keras.__version__ if hasattr(tf, 'keras') else ''} on TensorFlow {tf.__version__}, device {device}")
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    with tf.device(device):
        model = GRU4Rec(len(item_ids), {**SETTINGS["xe"], "n_epochs": 1}, 1, support=support)
    print("  placement (cross-entropy setting):")
    wrong = []
    variables = getattr(model, "sparse_vars", []) + getattr(model, "dense_vars", [])
    for v in variables:
        print(f"    {v.name:<30} {v.device}")
        if ("GPU" if gpu else "CPU") not in v.device.upper():
            wrong.append(f"keras {v.name}")
    print(f"  speed, {args.steps} mini-batches after {args.warmup} warm-up (batch 32 with 2048 extra samples; "
          "top1-2016: batch 50, none):")
    for setting in SPEED_SETTINGS:
        r = bench(setting, train, args.steps, args.warmup, False, device)
        print(f"    {setting:>7}: {r['mbatches_per_s']:>8,.1f} mini-batches/s, {r['events_per_s']:>9,.0f} events/s")
    return wrong


def side_by_side(df: pd.DataFrame, args) -> list[str]:
    """bench_vs_authors.compare on ``args.device``: one epoch of the authors'
    code and of ours per setting on ``df``, alternated; a failed run is reported."""
    from bench_vs_authors import compare

    print(f"side by side with the authors' code on {args.device}:")
    try:
        compare(df, args.side_settings, ["authors", "torch"], args)
    except RuntimeError as err:
        print(f"  failed: {err}", flush=True)
        return ["side by side"]
    return []


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--items", type=int, default=37_000)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--epoch-events", type=int, default=50_000, help="events of the short training epoch")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of each framework")
    ap.add_argument("--graph-steps", type=int, default=300, help="mini-batches of the graph-against-eager check")
    ap.add_argument("--frameworks", nargs="+", default=["torch", "keras"], choices=["torch", "keras"])
    ap.add_argument("--authors", help="checkout of hidasib/GRU4Rec_PyTorch_Official: also run it side by side")
    ap.add_argument("--side-settings", nargs="+", default=["xe", "bprmax", "xe-onehot", "bprmax-onehot"],
                    help="settings of the side-by-side run (rsc15_like.SETTINGS)")
    ap.add_argument("--sessions", type=int, default=RSC15_SESSIONS,
                    help="training sessions (the default has RSC15's popularity curve)")
    ap.add_argument("--repeats", type=int, default=3, help="side-by-side runs per program and setting")
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"No CUDA device visible to torch {torch.__version__}: nothing to check here. "
              "Run on a GPU machine, or pass --device cpu to exercise the script.")
        raise SystemExit(2)
    t0 = time.perf_counter()
    train = synthetic_sessions(args.items, max(args.sessions, (args.steps + args.warmup) * 10), seed=0)
    test = synthetic_sessions(args.items, 500, seed=1)
    test["SessionId"] += 10 ** 8
    print("data:", shape_report(train))
    wrong = []
    if "torch" in args.frameworks:
        wrong += check_torch(train, test, args)
    if "keras" in args.frameworks:
        try:
            wrong += check_keras(train, args)
        except Exception as err:  # the Keras side must not hide the PyTorch numbers
            print(f"Keras: failed ({type(err).__name__}: {err})")
            wrong.append("keras (failed)")
    if args.authors:
        wrong += side_by_side(train, args)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if wrong:
        print("FAIL: not on the device or failed:", ", ".join(wrong))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
