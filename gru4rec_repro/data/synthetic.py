"""A generator of synthetic clicks in the exact ``yoochoose-clicks.dat`` format.

The data look like RSC15 (SPEC.md section 1) and, more importantly, have
sequential structure a session model can learn and an item-to-item model
cannot fully see. Every parameter is documented in docs/SYNTHETIC.md.

The world (fixed by the seed):

* ``n_items`` items split into ``n_intents`` intents (groups of related items,
  think "running shoes"); intents are popular by a power law, items inside an
  intent too, so item popularity is heavy-tailed;
* every item has ``n_successors`` favourite next items from its own intent
  (item-to-item transitions, what Item-KNN picks up);
* every item has a Category string derived from its intent (RSC15 style:
  "0", "S", "1"-"12" or a 10-digit brand id); the study does not use it.

A session (``n_sessions`` of them, starting uniformly over ``n_days``):

* has a length drawn from P(1) = ``p_single`` and, for L >= 2,
  P(L) ~ L^-length_exponent * exp(-L / length_cutoff) (RSC15's shares);
* has one latent intent; its first click is an item of the intent, and each
  later click is, with these probabilities,
  - ``p_repeat``: the previous item again (immediate repeat);
  - ``p_revisit``: an earlier item of the session, picked in proportion to
    its dwell time (what the user looked at long is what they come back to);
  - ``p_noise``: a popular item from anywhere (a distraction, short dwell);
  - ``p_transition``: a successor of the ANCHOR, the last on-intent item
    clicked (not the last click: after a distraction the session resumes
    where it was, which a model of the whole session can see and the
    last-item model cannot);
  - otherwise: a fresh item of the session's intent;
* dwell times are log-normal with a heavy-tailed second component; clicks on
  the intent are looked at longer (``intent_dwell_factor``), distractions
  shorter (``noise_dwell_factor``), so dwell time carries signal.

The output is sorted by SessionID (ids 1..n_sessions in order of start time),
then by time, like the real file. Generation streams chunk by chunk to disk
and is deterministic by seed (the chunk size is a fixed constant).
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from ..atomic import atomic_path
from .clicks import write_clicks_chunk

log = logging.getLogger(__name__)

#: Sessions generated per chunk. Part of the definition of the output: changing
#: it changes the bytes for a given seed.
CHUNK_SESSIONS = 200_000


@dataclass(frozen=True)
class SyntheticConfig:
    n_sessions: int = 8000
    n_items: int = 1000
    n_days: int = 7
    seed: int = 0
    start: str = "2014-04-01T00:00:00"
    n_intents: int | None = None  # None: max(4, n_items // 20)
    intent_popularity_exponent: float = 1.1
    item_popularity_exponent: float = 1.3
    n_successors: int = 3
    successor_weights: tuple = (0.6, 0.3, 0.1)
    p_single: float = 0.13
    length_exponent: float = 1.55
    length_cutoff: float = 10.0
    max_length: int = 200
    p_repeat: float = 0.12
    p_revisit: float = 0.04
    p_noise: float = 0.22
    p_transition: float = 0.34
    dwell_median: float = 47.0
    dwell_sigma: float = 1.1
    p_long_dwell: float = 0.055
    long_dwell_median: float = 650.0
    long_dwell_sigma: float = 0.9
    intent_dwell_factor: float = 1.25
    noise_dwell_factor: float = 0.45

    def check(self) -> None:
        def bad(name, why):
            raise ValueError(f"synthetic generator: {name}={getattr(self, name)!r} {why}")

        for name in ("n_sessions", "n_items", "n_days", "n_successors", "max_length"):
            if int(getattr(self, name)) < 1:
                bad(name, "must be >= 1")
        if self.n_items < 2:
            bad("n_items", "must be >= 2")
        if self.max_length < 2:
            bad("max_length", "must be >= 2")
        probs = ("p_single", "p_repeat", "p_revisit", "p_noise", "p_transition", "p_long_dwell")
        for name in probs:
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must be a probability in [0, 1]")
        if self.p_repeat + self.p_revisit + self.p_noise + self.p_transition > 1.0:
            bad("p_transition", "makes p_repeat + p_revisit + p_noise + p_transition exceed 1")
        if len(self.successor_weights) != self.n_successors or min(self.successor_weights) < 0:
            bad("successor_weights", f"must be {self.n_successors} non-negative weights")
        for name in ("dwell_median", "long_dwell_median", "length_cutoff",
                     "intent_dwell_factor", "noise_dwell_factor"):
            if not getattr(self, name) > 0:
                bad(name, "must be > 0")

    @property
    def intents(self) -> int:
        n = self.n_intents if self.n_intents is not None else max(4, self.n_items // 20)
        return int(min(max(1, n), self.n_items))


class World:
    """Items, intents, popularity, successors, ids and categories of one seed."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        rng = np.random.default_rng([cfg.seed, 1])
        n_items, n_intents = cfg.n_items, cfg.intents
        # intents get nearly equal numbers of items; items are laid out intent by intent
        sizes = np.full(n_intents, n_items // n_intents)
        sizes[: n_items % n_intents] += 1
        self.intent_of_item = np.repeat(np.arange(n_intents), sizes)
        self.block_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.block_end = self.block_start + sizes
        # power-law popularity of intents and of items within an intent (ranks shuffled)
        intent_p = rng.permutation(np.arange(1, n_intents + 1) ** -cfg.intent_popularity_exponent)
        self.intent_p = intent_p / intent_p.sum()
        self.intent_cum = np.cumsum(self.intent_p)
        within = np.empty(n_items)
        for j in range(n_intents):
            ranks = rng.permutation(sizes[j]) + 1
            w = ranks ** -cfg.item_popularity_exponent
            within[self.block_start[j]: self.block_end[j]] = w / w.sum()
        # "intent + cumulative share inside the intent": sampling item | intent
        # is one searchsorted of (intent + u)
        self.within_cum = self.intent_of_item + np.concatenate(
            [np.cumsum(within[s:e]) for s, e in zip(self.block_start, self.block_end)]
        )
        self.item_p = self.intent_p[self.intent_of_item] * within
        self.item_cum = np.cumsum(self.item_p)
        # favourite next items, drawn inside the item's intent by popularity
        succ = self.sample_in_intent(np.repeat(self.intent_of_item, cfg.n_successors), rng)
        succ = succ.reshape(n_items, cfg.n_successors)
        own = succ == np.arange(n_items)[:, None]
        nxt = np.arange(n_items) + 1
        nxt = np.where(nxt >= self.block_end[self.intent_of_item], self.block_start[self.intent_of_item], nxt)
        self.successors = np.where(own, nxt[:, None], succ)
        w = np.asarray(cfg.successor_weights, dtype=np.float64)
        self.successor_cum = np.cumsum(w / w.sum())
        # RSC15-looking ids and categories
        self.item_ids = 214_500_000 + np.sort(rng.choice(max(1_000_000, 20 * n_items), n_items, replace=False))
        brand = 2_000_000_000 + rng.choice(100_000_000, n_intents, replace=False)
        label = np.array([str(j + 1) if j < 12 else str(brand[j]) for j in range(n_intents)], dtype=object)
        u = rng.random(n_items)
        cat = np.where(u < 0.45, "0", np.where(u < 0.5, "S", label[self.intent_of_item]))
        self.categories = pa.array(cat.astype(str), type=pa.string())

    def sample_intent(self, n: int, rng) -> np.ndarray:
        return np.minimum(np.searchsorted(self.intent_cum, rng.random(n) * self.intent_cum[-1]),
                          len(self.intent_p) - 1)

    def sample_in_intent(self, intents: np.ndarray, rng) -> np.ndarray:
        idx = np.searchsorted(self.within_cum, intents + rng.random(len(intents)) * 0.999999999, side="right")
        return np.clip(idx, self.block_start[intents], self.block_end[intents] - 1)

    def sample_popular(self, n: int, rng) -> np.ndarray:
        idx = np.searchsorted(self.item_cum, rng.random(n) * self.item_cum[-1], side="right")
        return np.minimum(idx, len(self.item_p) - 1)


def length_pmf(cfg: SyntheticConfig) -> np.ndarray:
    """P(L) for L = 0..max_length (P(0) = 0)."""
    lengths = np.arange(2, cfg.max_length + 1, dtype=np.float64)
    tail = lengths ** -cfg.length_exponent * np.exp(-lengths / cfg.length_cutoff)
    pmf = np.zeros(cfg.max_length + 1)
    pmf[1] = cfg.p_single
    pmf[2:] = (1.0 - cfg.p_single) * tail / tail.sum()
    return pmf


def _dwell(cfg: SyntheticConfig, rng, factor: np.ndarray) -> np.ndarray:
    n = len(factor)
    long = rng.random(n) < cfg.p_long_dwell
    median = np.where(long, cfg.long_dwell_median, cfg.dwell_median)
    sigma = np.where(long, cfg.long_dwell_sigma, cfg.dwell_sigma)
    dwell = median * np.exp(sigma * rng.standard_normal(n)) * factor
    return np.maximum(dwell, 1.0)


def _generate_chunk(cfg: SyntheticConfig, world: World, chunk: int, first_sid: int,
                    start_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sessions ``first_sid ..`` of one chunk -> (session ids, time ms, item index)."""
    rng = np.random.default_rng([cfg.seed, 2, chunk])
    n = len(start_ms)
    pmf = length_pmf(cfg)
    lengths = np.searchsorted(np.cumsum(pmf), rng.random(n) * pmf.sum(), side="right")
    lengths = np.clip(lengths, 1, cfg.max_length)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    items = np.empty(total, np.int64)
    dwell = np.empty(total)
    weight_cum = np.empty(total)  # running sum of dwell inside the session (for revisits)

    intent = world.sample_intent(n, rng)
    first = world.sample_in_intent(intent, rng)
    items[offsets] = first
    dwell[offsets] = _dwell(cfg, rng, np.full(n, cfg.intent_dwell_factor))
    weight_cum[offsets] = dwell[offsets]
    anchor = first.copy()

    by_length = np.argsort(-lengths, kind="stable")  # sessions still going at step k come first
    active_count = np.bincount(lengths, minlength=cfg.max_length + 2)[::-1].cumsum()[::-1]
    thresholds = np.cumsum([cfg.p_repeat, cfg.p_revisit, cfg.p_noise, cfg.p_transition])
    for k in range(1, int(lengths.max())):
        s = by_length[: active_count[k + 1]]  # sessions with length > k
        if len(s) == 0:
            break
        pos = offsets[s] + k
        prev = items[pos - 1]
        kind = np.searchsorted(thresholds, rng.random(len(s)), side="right")
        new = world.sample_in_intent(intent[s], rng)  # kind 4: a fresh item of the intent
        repeat, revisit, noise, trans = (kind == 0), (kind == 1), (kind == 2), (kind == 3)
        new[repeat] = prev[repeat]
        if revisit.any():  # earlier item, in proportion to its dwell
            r_off = offsets[s[revisit]]
            target = rng.random(len(r_off)) * weight_cum[r_off + k - 1]
            lo, hi = np.zeros(len(r_off), np.int64), np.full(len(r_off), k - 1)
            while (lo < hi).any():
                mid = (lo + hi) // 2
                right = weight_cum[r_off + mid] <= target
                lo, hi = np.where(right, mid + 1, lo), np.where(right, hi, mid)
            new[revisit] = items[r_off + lo]
        new[noise] = world.sample_popular(int(noise.sum()), rng)
        if trans.any():
            col = np.searchsorted(world.successor_cum, rng.random(int(trans.sum())), side="right")
            col = np.minimum(col, cfg.n_successors - 1)
            new[trans] = world.successors[anchor[s[trans]], col]
        on_intent = world.intent_of_item[new] == intent[s]
        items[pos] = new
        factor = np.where(on_intent, cfg.intent_dwell_factor, cfg.noise_dwell_factor)
        dwell[pos] = _dwell(cfg, rng, factor)
        weight_cum[pos] = weight_cum[pos - 1] + dwell[pos]
        moves_anchor = on_intent & ~repeat
        anchor[s[moves_anchor]] = new[moves_anchor]

    # time of an event = session start + dwell of all earlier events of the session
    dwell_ms = np.round(dwell * 1000.0).astype(np.int64)
    elapsed = np.cumsum(dwell_ms) - dwell_ms
    elapsed -= np.repeat(elapsed[offsets], lengths)
    time_ms = np.repeat(start_ms, lengths) + elapsed
    session_ids = np.repeat(np.arange(first_sid, first_sid + n, dtype=np.int64), lengths)
    return session_ids, time_ms, items


def generate(path: str | os.PathLike, *, n_sessions: int = SyntheticConfig.n_sessions,
             n_items: int = SyntheticConfig.n_items, n_days: int = SyntheticConfig.n_days,
             seed: int = SyntheticConfig.seed, progress: bool = True, **params) -> dict:
    """Write a synthetic clicks file to ``path`` (atomically); return a summary.

    Keyword ``params`` are the other fields of :class:`SyntheticConfig`
    (see docs/SYNTHETIC.md). Same parameters and seed => same bytes.
    """
    unknown = sorted(set(params) - {f.name for f in fields(SyntheticConfig)})
    if unknown:
        raise TypeError(f"unknown synthetic generator parameter(s) {unknown}")
    if "successor_weights" in params:
        params["successor_weights"] = tuple(params["successor_weights"])
    cfg = SyntheticConfig(n_sessions=int(n_sessions), n_items=int(n_items), n_days=int(n_days),
                          seed=int(seed), **params)
    cfg.check()
    world = World(cfg)
    rng = np.random.default_rng([cfg.seed, 3])
    t0 = np.datetime64(cfg.start, "ms").astype(np.int64)
    # session ids follow start time, as in RSC15
    start_ms = t0 + np.sort(rng.integers(0, cfg.n_days * 86_400_000, size=cfg.n_sessions))
    n_events = 0
    chunks = range(0, cfg.n_sessions, CHUNK_SESSIONS)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        for chunk, first in enumerate(tqdm(chunks, desc="synthetic clicks", unit="chunk",
                                           disable=not progress)):
            sl = slice(first, min(first + CHUNK_SESSIONS, cfg.n_sessions))
            sid, time_ms, items = _generate_chunk(cfg, world, chunk, first + 1, start_ms[sl])
            write_clicks_chunk(out, sid, time_ms, world.item_ids[items], world.categories.take(pa.array(items)))
            n_events += len(sid)
    log.info("wrote %d synthetic clicks (%d sessions, %d items) to %s", n_events, cfg.n_sessions,
             cfg.n_items, path)
    return {"path": str(path), "events": n_events, "config": asdict(cfg)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gru4rec_repro.data.synthetic",
        description="Write synthetic clicks in the yoochoose-clicks.dat format (see docs/SYNTHETIC.md).",
    )
    parser.add_argument("--out", required=True, help="output clicks file")
    parser.add_argument("--sessions", type=int, default=SyntheticConfig.n_sessions)
    parser.add_argument("--items", type=int, default=SyntheticConfig.n_items)
    parser.add_argument("--days", type=int, default=SyntheticConfig.n_days)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="any other parameter of docs/SYNTHETIC.md, e.g. --set p_noise=0.3")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    types = {f.name: f.type for f in fields(SyntheticConfig)}
    params = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in types:
            parser.error(f"unknown parameter {name!r}")
        if name == "successor_weights":
            params[name] = tuple(float(v) for v in value.split(","))
        elif name == "start":
            params[name] = value
        elif name == "n_intents" or name == "max_length" or name == "n_successors":
            params[name] = int(value)
        else:
            params[name] = float(value)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    summary = generate(args.out, n_sessions=args.sessions, n_items=args.items, n_days=args.days,
                       seed=args.seed, progress=not args.no_progress, **params)
    print(f"{summary['events']} clicks -> {summary['path']}")


if __name__ == "__main__":
    main()
