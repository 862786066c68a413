"""Training speed of gru4rec_keras on synthetic RSC15-like sessions.

Same settings, data and printout as ``bench_gru4rec_torch.py`` (events/s and
mini-batches/s of the tuned RSC15 settings, fixed number of steps after a
warm-up), so the two can be read side by side::

    python benchmarks/bench_gru4rec_keras.py --threads 2 --items 3000 37000 --steps 2000

``--backend`` picks the Keras backend (tensorflow, jax, torch; one per
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


def bench(setting: str, train: pd.DataFrame, steps: int, warmup: int, jit: bool, device: str) -> dict:
    from keras import ops

    from implementations.gru4rec_keras import compiled
    from implementations.gru4rec_keras.data import SessionData, item_index, session_parallel
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.runner import item_support
    from implementations.gru4rec_keras.sampling import SampleStore

    params = {**SETTINGS[setting], "n_epochs": 1, "jit_compile": jit}
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    data = SessionData.from_frame(train, item_ids)
    with compiled.device_scope(device):
        model = GRU4Rec(len(item_ids), params, seed=1, support=support)
        p = model.p
        store = SampleStore(support, p["n_sample"], p["sample_alpha"], p["sample_store_size"],
                            getattr(model, "sample_seed", 1)) \
            if p["n_sample"] else None
        no_neg = np.zeros(0, np.int32)
        it = session_parallel(data, p["batch_size"], min_lanes=2 if p["n_sample"] == 0 else 1)
        events = done = 0
        t0 = None
        loss_sum = ops.zeros(())
        for i, step in enumerate(it):
            if i == warmup:
                float(ops.convert_to_numpy(loss_sum))
                t0, c0, events = time.perf_counter(), time.process_time(), 0
            if i == warmup + steps:
                break
            if step.keep is not None:
                model.keep_lanes(step.keep)
            if step.reset is not None:
                model.reset_lanes(step.reset)
            loss_sum += model.train_step_tensor(step.in_idx, step.out_idx, store.next() if store else no_neg)
            events += len(step.in_idx)
            done = i + 1 - warmup
        float(ops.convert_to_numpy(loss_sum))
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
    return {"setting": setting, "items": len(item_ids), "device": device, "backend": compiled.backend(),
            "threads": THREADS,
            "steps": done, "events_per_s": events / seconds, "mbatches_per_s": done / seconds,
            "events_per_cpu_s": events / cpu_seconds}


def main(argv=None) -> None:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--jit", action="store_true",
                    help="compile the step: XLA on TensorFlow, torch.compile on PyTorch (JAX: always XLA)")
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
            print(f"{r['setting']:>14} items={r['items']:>6} backend={r['backend']} device={r['device']} "
                  f"threads={r['threads']} jit={args.jit} "
                  f"steps={r['steps']}: {r['events_per_s']:,.0f} events/s, "
                  f"{r['mbatches_per_s']:,.1f} mini-batches/s ({r['events_per_cpu_s']:,.0f} events per "
                  f"CPU-second of this process)", flush=True)


if __name__ == "__main__":
    main()
