"""Benchmark: POP, S-POP and BPR-MF ranking of RSC15's 55,898 test predictions.

Uses the random RSC15-shaped data of ``bench_iknn.py`` (31.6M training events,
37,483 items). Ranking cost does not depend on what a model learned, so BPR-MF
is timed with its initial factors unless ``--bpr-epochs`` asks for training
(each epoch is then timed too: the cost of BPR-MF on full RSC15). BPR-MF's
ranking is timed twice: alone, and with the score shares of diagnostics.json
computed in the same pass (as its ``run`` does).

    python benchmarks/bench_baselines_scoring.py                 # ranking only
    python benchmarks/bench_baselines_scoring.py --bpr-epochs 1  # plus one BPR epoch
"""
from __future__ import annotations

import argparse
import logging
import time

from bench_iknn import peak_rss_mb, rsc15_like

from implementations.baselines.bprmf import BPRMF, rank_with_shares
from implementations.baselines.common import PredictionEvents, default_block, rank_events
from implementations.baselines.pop import Pop
from implementations.baselines.spop import SPop


def timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label}: {time.perf_counter() - t0:.1f} s (peak RSS so far {peak_rss_mb():,.0f} MB)", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of RSC15's training size (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bpr-epochs", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=1024, help="BPR-MF events per SGD chunk")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    train, test = rsc15_like(args.seed, args.scale)
    for name, model in (("pop", Pop()), ("spop", SPop())):
        timed(f"{name} fit", lambda: model.fit(train))
        events = PredictionEvents.from_test(test, model.item_ids)
        timed(f"{name} ranking of {len(events):,} events x {len(model.item_ids):,} items",
              lambda: rank_events(events, lambda rows: model.score_block(events, rows), progress=False))
    bpr = BPRMF(n_epochs=args.bpr_epochs, chunk=args.chunk, seed=args.seed)
    timed(f"bprmf fit ({args.bpr_epochs} epoch(s), chunk {args.chunk})", lambda: bpr.fit(train))
    for entry in bpr.epoch_log:
        print(f"  epoch {entry['epoch']}: {entry['seconds']:.1f} s, {entry['events_per_s']:,.0f} events/s, "
              f"loss {entry['loss']:.4f}, {entry['threads']} thread(s)")
    events = PredictionEvents.from_test(test, bpr.item_ids)
    timed(f"bprmf ranking of {len(events):,} events",
          lambda: rank_events(events, lambda rows: bpr.score_block(events, rows),
                              block=default_block(len(bpr.item_ids), itemsize=4), progress=False))
    _, shares = timed(f"bprmf ranking of {len(events):,} events with the score shares (as run() does)",
                      lambda: rank_with_shares(bpr, events))
    print(f"  score_share_bias {shares['score_share_bias']}, score_share_factors {shares['score_share_factors']}")


if __name__ == "__main__":
    main()
