"""Contract entry point: ``run(train, test, params, seed, ctx)`` for the Keras implementations.

``params["variant"]``: ``gru4rec`` (default; the full GRU4Rec of SPEC.md
section 4, parameters of GRU4REC_API.md) or ``port`` (the tutorial's Keras
port of SPEC.md section 5, with its flaw switches; see :mod:`.port`).
``params["backend"]``: the Keras backend (tensorflow, the default; jax; torch),
set before Keras is first imported in this process (:func:`.use_backend`):
this module imports Keras only inside :func:`run` and :func:`run_together`.

``run.seeds_together`` (:func:`run_together`) does what :func:`run` does for
several seeds of one run trained together (:mod:`.seeds`: one vmapped step on
JAX on a GPU, the seeds' steps one after another on the CPU and on TensorFlow
and PyTorch), each seed
in its own folder; ``gru4rec_repro.run.run_seeds`` uses it when several seeds
are left to train, unless ``GRU4REC_KERAS_SEEDS_TOGETHER=0``. The port
variant runs seed by seed.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from gru4rec_repro.contract import RunContext, validate_ranks

from . import use_backend
from .data import SessionData, item_index

log = logging.getLogger(__name__)
VARIANTS = ("gru4rec", "port")


def configure(seed: int, threads: int, device: str, logger: logging.Logger | None = None) -> str:
    """Threads, determinism and device of the process's Keras backend; returns the
    device to run on, ``"/GPU:0"`` or ``"/CPU:0"`` (for ``keras.device``)."""
    from . import compiled

    return "/GPU:0" if compiled.configure(seed, threads, device, logger or log) == "gpu" else "/CPU:0"


def item_support(train: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """Training events of each item, in item-index order."""
    idx = np.searchsorted(item_ids, train["ItemId"].to_numpy(dtype=np.int64))
    return np.bincount(idx, minlength=len(item_ids)).astype(np.float64)


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    params = dict(params or {})
    variant = params.pop("variant", "gru4rec")
    if variant not in VARIANTS:
        raise ValueError(f"gru4rec_keras: unknown variant {variant!r}; use one of {VARIANTS}")
    backend = use_backend(params.get("backend"))  # before Keras is imported
    params["backend"] = backend
    from . import compiled

    device = configure(seed, ctx.threads, ctx.device, ctx.log)
    device_name = "gpu" if device.startswith("/GPU") else "cpu"
    ctx.log.info("gru4rec_keras %s: seed %d, threads %d, device %s, Keras backend %s (%s), params %s",
                 variant, seed, ctx.threads, device_name, backend, compiled.versions(), params)
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    with compiled.device_scope(device):
        if variant == "port":
            from .port import KerasPort

            port_params = {k: v for k, v in params.items() if k != "backend"}
            model = KerasPort(len(item_ids), port_params, seed)
            model.item_ids = item_ids
            if model.p["flaw_float32_time"]:
                from .port import float32_time_order

                train = float32_time_order(train)
            data = SessionData.from_frame(train, item_ids, where="train", time_sort=model.time_sort)
            model.fit(data, ctx.outdir, threads=ctx.threads, device=device_name, progress=ctx.progress)
            ranks = model.evaluate(test, progress=ctx.progress)
        else:
            from .model import GRU4Rec
            from .train import train as train_loop

            model = GRU4Rec(len(item_ids), params, seed, support=support)
            model.item_ids = item_ids
            data = SessionData.from_frame(train, item_ids, where="train", time_sort=model.p["time_sort"])
            train_loop(model, data, ctx.outdir, support=support, threads=ctx.threads,
                       device=device_name, progress=ctx.progress)
            ranks = model.evaluate(test, progress=ctx.progress)
        model.save_weights(ctx.outdir / "weights.npz")
    return validate_ranks(ranks, "gru4rec_keras rank record")


def run_together(train: pd.DataFrame, test: pd.DataFrame, params: dict, seeds: list[int],
                 ctxs: list[RunContext]) -> list[pd.DataFrame]:
    """:func:`run` for each of ``seeds`` (one ``ctxs[i]`` each: folder, threads, device), the
    seeds trained together (:func:`.train.train_together`); returns the rank records in the
    order of ``seeds``: the same weights (float32 tolerance) and rank records as :func:`run`
    seed by seed (tests/test_gru4rec_keras_seeds.py). :func:`run` seed by seed for the port
    variant, one seed, or ``GRU4REC_KERAS_SEEDS_TOGETHER=0``."""
    if len(seeds) != len(ctxs):
        raise ValueError(f"run_together: {len(seeds)} seeds but {len(ctxs)} run contexts")
    params = dict(params or {})
    variant = params.get("variant", "gru4rec")
    if variant not in VARIANTS:
        raise ValueError(f"gru4rec_keras: unknown variant {variant!r}; use one of {VARIANTS}")
    backend = use_backend(params.get("backend"))  # before Keras is imported
    from .seeds import seeds_together_enabled

    if variant != "gru4rec" or len(seeds) == 1 or not seeds_together_enabled():
        return [run(train, test, params, s, c) for s, c in zip(seeds, ctxs)]
    params.pop("variant", None)
    params["backend"] = backend
    from . import compiled
    from .model import GRU4Rec
    from .train import train_together

    ctx = ctxs[0]
    device = configure(seeds[0], ctx.threads, ctx.device, ctx.log)
    device_name = "gpu" if device.startswith("/GPU") else "cpu"
    ctx.log.info("gru4rec_keras gru4rec: seeds %s together (%s), threads %d, device %s, Keras backend %s (%s), "
                 "params %s", list(seeds), "one vmapped step" if compiled.batch_seeds_by_default() else "one after another",
                 ctx.threads, device_name, backend, compiled.versions(), params)
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    ranks = []
    with compiled.device_scope(device):
        models = [GRU4Rec(len(item_ids), params, s, support=support) for s in seeds]
        for m in models:
            m.item_ids = item_ids
        data = SessionData.from_frame(train, item_ids, where="train", time_sort=models[0].p["time_sort"])
        train_together(models, data, [c.outdir for c in ctxs], support=support, threads=ctx.threads,
                       device=device_name, progress=ctx.progress)
        for m, c in zip(models, ctxs):
            ranks.append(validate_ranks(m.evaluate(test, progress=c.progress), "gru4rec_keras rank record"))
            m.save_weights(c.outdir / "weights.npz")
    return ranks


#: the contract's hook for several seeds of one run (gru4rec_repro.run.run_seeds)
run.seeds_together = run_together
