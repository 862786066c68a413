"""Run one implementation on one split: the rank record and its metrics, seed by seed.

This is what the workflow's ``train`` rule calls (every seed of one run in one
process), and what a user calls by hand on any split (the official TSV files
or our parquet files)::

    python -m gru4rec_repro run --implementation gru4rec_torch \\
        --train train_full.tsv --test test.tsv \\
        --params '{"loss": "cross-entropy", "n_epochs": 3}' --seeds 1 2 3 --out results/mine

Each seed writes to its own folder ``<out>/seed<s>/``: ``ranks.parquet``, then
``metrics.json`` (from the rank record by the one shared
:func:`gru4rec_repro.evaluation.metrics_from_ranks`; no model computes its
own), then ``run_info.json`` last. ``run_info.json`` carries a key (sha256 of
the implementation, its params, the seed and the data), so a seed whose three
files are there with the same key is skipped when the command runs again; a
seed whose training stopped half way resumes from the implementation's
per-epoch checkpoint in its folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .contract import DETERMINISTIC, RunContext, resolve, validate_ranks
from .data.errors import DataError
from .data.prepared import read_tsv
from .evaluation import metrics_from_ranks
from .split import COLUMNS, DTYPES, dataset_info, sort_sessions

log = logging.getLogger("gru4rec_repro.run")


def read_split_file(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split from our parquet or from the official tab-separated format (validated).

    An empty split is an error; when the data step recorded why it is empty
    (a prepared dataset without a validation split), the message says so.
    """
    path = Path(path)
    if path.suffix != ".parquet":
        df = read_tsv(path)
    elif path.is_file():
        df = pd.read_parquet(path, columns=list(COLUMNS)).astype(DTYPES)
    else:
        raise DataError(path, "no such split file")
    if df.empty:
        raise DataError(path, "the split is empty" + _why_empty(path))
    return sort_sessions(df)


def _why_empty(path: Path) -> str:
    """What the split's manifest says is missing (a validation split the dataset cannot have)."""
    if path.stem not in ("train_tr", "train_valid"):
        return ""
    info = dataset_info(path.parent)
    validation = info.get("validation") or {}
    if validation.get("available") is not False:
        return ""
    name = info.get("dataset", "?")
    keys = " and ".join(f"datasets.{name}.{k}" for k in validation.get("missing_keys", []))
    return (f": dataset {name!r} has no validation split ({validation.get('reason', '')}); "
            f"study.eval_split 'valid' needs one: give {keys} in the config, "
            "or evaluate on test (study.eval_split: test)")


def data_sha256(*frames: pd.DataFrame) -> str:
    """sha256 over the SessionId, ItemId and Time columns of ``frames``, in order (no sort)."""
    digest = hashlib.sha256()
    for df in frames:
        digest.update(np.int64(len(df)).tobytes())
        for column, dtype in zip(COLUMNS, ("<i8", "<i8", "<f8")):
            digest.update(np.ascontiguousarray(df[column].to_numpy(), dtype=dtype).tobytes())
    return digest.hexdigest()


def run_key(implementation: str, params: dict, seed: int, data_key: str) -> str:
    """What a finished seed must match to be skipped: implementation, params, seed, data."""
    text = json.dumps({"implementation": implementation, "params": params, "seed": int(seed),
                       "data": data_key}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seed_is_complete(outdir: str | os.PathLike, key: str) -> bool:
    """``outdir`` holds a rank record, its metrics and a ``run_info.json`` written for ``key``."""
    outdir = Path(outdir)
    if not all((outdir / name).is_file() for name in ("ranks.parquet", "metrics.json", "run_info.json")):
        return False
    try:
        return json.loads((outdir / "run_info.json").read_text()).get("key") == key
    except (OSError, ValueError):
        return False


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
    key: str | None = None,
) -> pd.DataFrame:
    """Train and rank one seed; write ``ranks.parquet``, ``metrics.json``, then ``run_info.json``.

    ``key``: what :func:`seed_is_complete` checks (default: computed from the arguments).
    """
    fn = resolve(implementation)
    outdir = Path(outdir)
    if key is None:
        key = run_key(implementation, params, seed, data_sha256(train, test))
    (outdir / "run_info.json").unlink(missing_ok=True)  # written again last, when the seed is done
    ctx = RunContext(outdir=outdir, threads=threads, device=device, progress=progress, log=log)
    unseen = ~test["ItemId"].isin(train["ItemId"].unique())
    if unseen.any():
        log.info("dropping %d test events whose item is not in train", int(unseen.sum()))
    log.info(
        "%s: seed %d, %d train events, %d test events, %d thread(s), device %s, params %s",
        implementation, seed, len(train), len(test), threads, device, json.dumps(params),
    )
    t0 = time.perf_counter()
    ranks = fn(train, test, dict(params), seed, ctx)
    return _finish_seed(implementation, ranks, params, seed, outdir, threads, device, time.perf_counter() - t0, key)


def _finish_seed(implementation: str, ranks: pd.DataFrame, params: dict, seed: int, outdir: Path,
                 threads: int, device: str, seconds: float, key: str) -> pd.DataFrame:
    """Write a trained seed's ``ranks.parquet``, ``metrics.json``, then ``run_info.json``."""
    ranks = validate_ranks(ranks, where=f"{implementation} rank record")
    atomic.write_parquet(ranks, outdir / "ranks.parquet")
    log.info("%s seed %d: %d ranked events in %.1f s", implementation, seed, len(ranks), seconds)
    write_metrics(outdir / "ranks.parquet", outdir / "metrics.json", ranks=ranks)
    atomic.write_json(
        {
            "implementation": implementation,
            "seed": seed,
            "deterministic": implementation in DETERMINISTIC,
            "params": params,
            "threads": threads,
            "device": device,
            "seconds_total": seconds,
            "key": key,
        },
        outdir / "run_info.json",
    )
    return ranks


def run_seeds(
    implementation: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: dict,
    seeds: list[int],
    outroot: str | os.PathLike,
    *,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Every seed of one run in this process, each in ``outroot/seed<s>/``; returns the folders.

    One process pays the framework's import and the data reading once for all
    seeds. A seed already complete (:func:`seed_is_complete`) is skipped; the
    others run in the order given and resume from their checkpoints.
    """
    if not seeds:
        raise ValueError("run_seeds: no seeds given")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"run_seeds: seeds repeat: {list(seeds)}")
    data_key = data_sha256(train, test)
    # an implementation whose run function has ``seeds_together(train, test, params, seeds, ctxs)``
    # trains the seeds left to train as one batched model (gru4rec_torch); each seed keeps its folder
    together = getattr(resolve(implementation), "seeds_together", None)
    todo = [s for s in seeds if not seed_is_complete(Path(outroot) / f"seed{s}",
                                                     run_key(implementation, params, s, data_key))]
    if together is not None and len(todo) > 1:
        outdirs = [Path(outroot) / f"seed{s}" for s in todo]
        for o in outdirs:
            (o / "run_info.json").unlink(missing_ok=True)
        ctxs = [RunContext(outdir=o, threads=threads, device=device, progress=progress, log=log) for o in outdirs]
        log.info("%s: seeds %s together, params %s", implementation, todo, json.dumps(params))
        t0 = time.perf_counter()
        all_ranks = together(train, test, dict(params), list(todo), ctxs)
        seconds = time.perf_counter() - t0
        for s, o, ranks in zip(todo, outdirs, all_ranks):
            _finish_seed(implementation, ranks, params, s, o, threads, device, seconds,
                         run_key(implementation, params, s, data_key))
    return [run_seed(implementation, train, test, params, seed, Path(outroot) / f"seed{seed}",
                     data_key=data_key, threads=threads, device=device, progress=progress)
            for seed in seeds]


def run_seed(
    implementation: str,
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: dict,
    seed: int,
    outdir: str | os.PathLike,
    *,
    data_key: str | None = None,
    threads: int = 1,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """One seed in ``outdir``: skipped when already complete (:func:`seed_is_complete`), else
    trained (resuming from its checkpoint) and ranked; returns ``outdir``.

    ``data_key``: :func:`data_sha256` of ``train`` and ``test`` when already computed.
    """
    outdir = Path(outdir)
    key = run_key(implementation, params, seed, data_sha256(train, test) if data_key is None else data_key)
    if seed_is_complete(outdir, key):
        log.info("%s seed %d: complete in %s; skipped", implementation, seed, outdir)
    else:
        run_implementation(implementation, train, test, params, seed, outdir, threads=threads,
                           device=device, progress=progress, key=key)
    return outdir


def write_metrics(ranks_path: str | os.PathLike, metrics_path: str | os.PathLike, *,
                  ranks: pd.DataFrame | None = None) -> dict:
    """The shared rank record -> ``metrics.json`` step (every run's, in its training process).

    ``ranks``: the rank record already in memory (else read from ``ranks_path``).
    """
    metrics = metrics_from_ranks(pd.read_parquet(ranks_path) if ranks is None else ranks)
    atomic.write_json(metrics, metrics_path)
    c = metrics["conservative"]
    log.info(
        "%s: %d events, Recall@20 %.4f, MRR@20 %.4f (conservative ties)",
        ranks_path, metrics["events"], c["recall@20"], c["mrr@20"],
    )
    return metrics
