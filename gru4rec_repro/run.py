"""Run one implementation on one split with one seed: the rank record and its metrics.

This is what the workflow's ``run_model`` rule calls, and what a user calls by
hand on any split (the official TSV files or our parquet files)::

    python -m gru4rec_repro run --implementation gru4rec_torch \\
        --train train_full.tsv --test test.tsv \\
        --params '{"loss": "cross-entropy", "n_epochs": 3}' --seed 1 --out results/mine
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd

from . import atomic
from .contract import DETERMINISTIC, RunContext, resolve, validate_ranks
from .data.errors import DataError
from .data.prepared import read_tsv
from .evaluation import metrics_from_ranks
from .split import COLUMNS, DTYPES, sort_sessions

log = logging.getLogger("gru4rec_repro.run")

def read_split_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split from our parquet or from the official tab-separated format (validated)."""
    path = Path(path)
    if path.suffix != ".parquet":
        df = read_tsv(path)
    elif path.is_file():
        df = pd.read_parquet(path, columns=list(COLUMNS)).astype(DTYPES)
    else:
        raise DataError(path, "no such split file")
    if df.empty:
        raise DataError(path, "the split is empty")
    return sort_sessions(df)


def run_implementation(
    implementation: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: dict,
    seed: int,
    outdir: str | os.PathLike,
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
    with_metrics: bool = True,
) -> pd.DataFrame:
    """Train and rank; write ``ranks.parquet`` and ``run_info.json`` (and ``metrics.json``) to ``outdir``.

    The workflow computes ``metrics.json`` in a rule of its own
    (``with_metrics=False``); by hand, it comes with the run.
    """
    fn = resolve(implementation)
    outdir = Path(outdir)
    ctx = RunContext(outdir=outdir, threads=threads, device=device, progress=progress, log=log)
    unseen = ~test["ItemId"].isin(train["ItemId"].unique())
    if unseen.any():
        log.info("dropping %d test events whose item is not in train", int(unseen.sum()))
    log.info(
        "%s: seed %d, %d train events, %d test events, %d thread(s), device %s, params %s",
        implementation, seed, len(train), len(test), threads, device, json.dumps(params),
    )
    t0 = time.perf_counter()
    ranks = validate_ranks(fn(train, test, dict(params), seed, ctx), where=f"{implementation} rank record")
    seconds = time.perf_counter() - t0
    atomic.write_parquet(ranks, outdir / "ranks.parquet")
    atomic.write_json(
        {
            "implementation": implementation,
            "seed": seed,
            "deterministic": implementation in DETERMINISTIC,
            "params": params,
            "threads": threads,
            "device": device,
            "seconds_total": seconds,
        },
        outdir / "run_info.json",
    )
    log.info("%s seed %d: %d ranked events in %.1f s", implementation, seed, len(ranks), seconds)
    if with_metrics:
        write_metrics(outdir / "ranks.parquet", outdir / "metrics.json")
    return ranks


def write_metrics(ranks_path: str | os.PathLike, metrics_path: str | os.PathLike,
                  log_path: str | os.PathLike | None = None) -> dict:
    """The shared rank record -> ``metrics.json`` step (the workflow's ``metrics`` rule).

    ``log_path``: a file that gets the metrics as one JSON line (the rule's log).
    """
    metrics = metrics_from_ranks(pd.read_parquet(ranks_path))
    atomic.write_json(metrics, metrics_path)
    if log_path is not None:
        Path(log_path).write_text(json.dumps(metrics) + "\n")
    c = metrics["conservative"]
    log.info(
        "%s: %d events, Recall@20 %.4f, MRR@20 %.4f (conservative ties)",
        ranks_path, metrics["events"], c["recall@20"], c["mrr@20"],
    )
    return metrics
