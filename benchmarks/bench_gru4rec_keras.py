"""Training speed of gru4rec_keras on synthetic RSC15-like sessions.

Same settings, data and printout as ``bench_gru4rec_torch.py`` (events/s and
mini-batches/s of the tuned RSC15 settings, fixed number of steps after a
warm-up), so the two can be read side by side::

    python benchmarks/bench_gru4rec_keras.py --threads 2 --items 3000 37000 --steps 2000

``--seeds N`` also times N seeds trained together (``seeds.SeedsTogether``: one
vmapped step on JAX) and prints their seed-events/s against one seed's events/s
(N seeds one after another train at one seed's rate). ``--backend`` picks the Keras backend (tensorflow, jax, torch; one per
process). ``--jit`` compiles the step: XLA on TensorFlow (JAX always uses
XLA), ``torch.compile`` on PyTorch. Timings are wall-clock
on whatever else the machine is doing: say so when you quote them. Events per
CPU-second of this process (printed too) depend less on other load; with one
thread they are the better figure on a shared machine.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rsc15_like import SETTINGS, bench_parser, synthetic_sessions  # noqa: E402  (benchmarks/ is on sys.path)

#: the thread count the benchmark set (reported with each result)
THREADS = None


def bench(setting: str, train: pd.DataFrame, steps: int, warmup: int, jit: bool, device: str,
          seeds: int = 1) -> dict:
    """One seed (``seeds`` 1), or ``seeds`` seeds trained together (:class:`.seeds.SeedsTogether`:
    one vmapped step on JAX, one after another elsewhere): events/s counts each seed's events."""
    from keras import ops

    from implementations.gru4rec_keras import compiled
    from implementations.gru4rec_keras.data import SessionData, item_index, session_parallel
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.runner import item_support
    from implementations.gru4rec_keras.sampling import SampleStore
    from implementations.gru4rec_keras.seeds import SeedsTogether

    params = {**SETTINGS[setting], "n_epochs": 1, "jit_compile": jit}
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    data = SessionData.from_frame(train, item_ids)
    with compiled.device_scope(device):
        models = [GRU4Rec(len(item_ids), params, seed=1 + s, support=support) for s in range(seeds)]
        p = models[0].p
        stores = [SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"], m.sample_seed)
                  for m in models] if p["n_sample"] else None
        if seeds == 1:
            stepper = models[0]
            no_neg = np.zeros(0, np.int32)
            negatives = stores[0].next if stores else (lambda: no_neg)
        else:
            stepper = SeedsTogether(models, batched=compiled.batches_seeds() or None)  # JAX: vmapped, on the CPU too
            negatives = (lambda: np.stack([st.next() for st in stores])) if stores else (lambda: None)
        it = session_parallel(data, p["batch_size"], min_lanes=2 if p["n_sample"] == 0 else 1)
        events = done = 0
        t0 = None
        loss_sum = ops.zeros(())
        for i, step in enumerate(it):
            if i == warmup:
                float(np.sum(ops.convert_to_numpy(loss_sum)))
                t0, c0, events = time.perf_counter(), time.process_time(), 0
            if i == warmup + steps:
                break
            if step.keep is not None:
                stepper.keep_lanes(step.keep)
            if step.reset is not None:
                stepper.reset_lanes(step.reset)
            loss_sum = loss_sum + stepper.train_step_tensor(step.in_idx, step.out_idx, negatives())
            events += len(step.in_idx) * seeds
            done = i + 1 - warmup
        float(np.sum(ops.convert_to_numpy(loss_sum)))
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
    return {"setting": setting, "items": len(item_ids), "device": device, "backend": compiled.backend(),
            "threads": THREADS, "seeds": seeds,
            "how": "one seed" if seeds == 1 else ("vmapped" if stepper.batched else "one after another"),
            "steps": done, "events_per_s": events / seconds, "mbatches_per_s": done / seconds,
            "events_per_cpu_s": events / cpu_seconds}


def report(r: dict, jit: bool) -> str:
    what = "" if r["seeds"] == 1 else f" seeds={r['seeds']} ({r['how']}; seed-events)"
    return (f"{r['setting']:>14} items={r['items']:>6} backend={r['backend']} device={r['device']} "
            f"threads={r['threads']} jit={jit}{what} "
            f"steps={r['steps']}: {r['events_per_s']:,.0f} events/s, "
            f"{r['mbatches_per_s']:,.1f} mini-batches/s ({r['events_per_cpu_s']:,.0f} events per "
            f"CPU-second of this process)")


def main(argv=None) -> None:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--jit", action="store_true",
                    help="compile the step: XLA on TensorFlow, torch.compile on PyTorch (JAX: always XLA)")
    ap.add_argument("--seeds", type=int, default=1,
                    help="also time N seeds trained together (seeds.SeedsTogether) against one seed: "
                         "seed-events/s of N together over N sequential runs (events/s of one)")
    ap.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax", "torch"],
                    help="the Keras backend (default tensorflow)")
    args = ap.parse_args(argv)
    from implementations.gru4rec_keras import use_backend

    use_backend(args.backend)  # before Keras is imported
    from implementations.gru4rec_keras.runner import configure

    global THREADS
    THREADS = args.threads
    device = configure(1, args.threads, args.device)
    for n_items in args.items:
        train = synthetic_sessions(n_items, max(args.sessions, (args.steps + args.warmup) * 10))
        for setting in args.settings:
            r = bench(setting, train, args.steps, args.warmup, args.jit, device)
            print(report(r, args.jit), flush=True)
            if args.seeds > 1:  # N seeds together against N seeds one run after another (= one seed's rate)
                t = bench(setting, train, args.steps, args.warmup, args.jit, device, seeds=args.seeds)
                print(report(t, args.jit), flush=True)
                print(f"{setting:>14} items={r['items']:>6} {args.seeds} seeds together / {args.seeds} x one seed: "
                      f"x{t['events_per_cpu_s'] / r['events_per_cpu_s']:.2f} per CPU-second, "
                      f"x{t['events_per_s'] / r['events_per_s']:.2f} per wall second", flush=True)

if __name__ == "__main__":
    main()
