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

import time

import pandas as pd
import torch

from implementations.gru4rec_torch.data import session_parallel
from implementations.gru4rec_torch.runner import build
from implementations.gru4rec_torch.steps import step_runner

from rsc15_like import SETTINGS, bench_parser, synthetic_sessions  # noqa: E402  (benchmarks/ is on sys.path)


def bench(setting: str, train: pd.DataFrame, steps: int, warmup: int, device: str) -> dict:
    model, data = build(train, {**SETTINGS[setting], "n_epochs": 1}, 1, device)
    dev = model.device
    min_lanes = 2 if model.params["n_sample"] == 0 else 1
    it = session_parallel(data, model.params["batch_size"], min_lanes=min_lanes)
    events = done = 0
    t0 = None
    loss_sum = torch.zeros((), device=dev)
    run_step = step_runner(model, loss_sum)  # a CUDA graph's replays on a GPU (steps.py)
    for i, step in enumerate(it):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0, c0, events = time.perf_counter(), time.process_time(), 0
        if i == warmup + steps:
            break
        run_step(step, model.next_negatives())
        events += len(step.in_idx)
        done = i + 1 - warmup
    float(loss_sum)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    return {"setting": setting, "items": model.n_items, "device": str(dev), "threads": torch.get_num_threads(),
            "steps": done, "events_per_s": events / seconds, "mbatches_per_s": done / seconds,
            "events_per_cpu_s": events / cpu_seconds}


def main(argv=None) -> None:
    ap = bench_parser(__doc__.splitlines()[0])
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for n_items in args.items:
        train = synthetic_sessions(n_items, max(args.sessions, (args.steps + args.warmup) * 10))
        for setting in args.settings:
            r = bench(setting, train, args.steps, args.warmup, args.device)
            print(f"{r['setting']:>14} items={r['items']:>6} device={r['device']} threads={r['threads']} "
                  f"steps={r['steps']}: {r['events_per_s']:,.0f} events/s, "
                  f"{r['mbatches_per_s']:,.1f} mini-batches/s ({r['events_per_cpu_s']:,.0f} events per "
                  f"CPU-second of this process)", flush=True)


if __name__ == "__main__":
    main()
