"""Training speed of gru4rec_torch on synthetic RSC15-like sessions.

Prints events/s and mini-batches/s of the tuned RSC15 settings (SPEC.md
section 4) for a fixed number of steps after a warm-up::

    python benchmarks/bench_gru4rec_torch.py --threads 2 --items 3000 37000 --steps 2000
    python benchmarks/bench_gru4rec_torch.py --threads 1 --items 3000 --settings xe --seeds 1 5

``--seeds S`` trains S seeds together (seeds.SeedsTogether) and prints
seed-events/s: S times the events per second each seed trains.

Timings are wall-clock on whatever else the machine is doing: say so when
you quote them. Events per CPU-second of this process (printed too) depend
less on other load. On a shared machine, more than one torch thread can be
far slower than one (OpenMP threads spin at every barrier while another
process holds the core); ``OMP_WAIT_POLICY=PASSIVE`` softens that.
"""
from __future__ import annotations

import pandas as pd
import torch

from implementations.gru4rec_torch.model import GRU4Rec
from implementations.gru4rec_torch.runner import build
from implementations.gru4rec_torch.seeds import SeedsTogether
from implementations.gru4rec_torch.steps import time_steps

from rsc15_like import SETTINGS, bench_parser, synthetic_sessions  # noqa: E402  (benchmarks/ is on sys.path)


def bench(setting: str, train: pd.DataFrame, steps: int, warmup: int, device: str, seeds: int = 1) -> dict:
    """Time ``steps`` mini-batches after ``warmup`` (steps.time_steps: graph replays on a GPU);
    ``seeds`` > 1: that many seeds trained together (seeds.SeedsTogether)."""
    params = {**SETTINGS[setting], "n_epochs": 1}
    model, data = build(train, params, 1, device)
    if seeds > 1:
        model = SeedsTogether([model] + [GRU4Rec(model.n_items, params, s, support=model.support, device=device)
                                         for s in range(2, seeds + 1)])
    r = time_steps(model, data, steps, warmup)
    return {"setting": setting, "items": model.n_items, "device": str(model.device),
            "threads": torch.get_num_threads(), **r, "events_per_cpu_s": r["events"] / r["cpu_seconds"],
            "seed_events_per_cpu_s": r["seeds"] * r["events"] / r["cpu_seconds"]}


def main(argv=None) -> None:
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1],
                    help="seeds trained together (1: one model); several values: one measurement each")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for n_items in args.items:
        train = synthetic_sessions(n_items, max(args.sessions, (args.steps + args.warmup) * 10))
        for setting in args.settings:
            for seeds in args.seeds:
                r = bench(setting, train, args.steps, args.warmup, args.device, seeds)
                together = "" if seeds == 1 else (
                    f" seeds={seeds} together: {r['seed_events_per_s']:,.0f} seed-events/s "
                    f"({r['seed_events_per_cpu_s']:,.0f} per CPU-second);")
                print(f"{r['setting']:>14} items={r['items']:>6} device={r['device']} threads={r['threads']} "
                      f"steps={r['steps']}:{together} {r['events_per_s']:,.0f} events/s, "
                      f"{r['mbatches_per_s']:,.1f} mini-batches/s ({r['events_per_cpu_s']:,.0f} events per "
                      f"CPU-second of this process)", flush=True)


if __name__ == "__main__":
    main()
