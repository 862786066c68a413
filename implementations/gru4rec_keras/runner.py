"""Contract entry point: ``run(train, test, params, seed, ctx)`` for the Keras implementations.

``params["variant"]``: ``gru4rec`` (default; the full GRU4Rec of SPEC.md
section 4, parameters of GRU4REC_API.md) or ``port`` (the tutorial's Keras
port of SPEC.md section 5, with its flaw switches; see :mod:`.port`).
"""
from __future__ import annotations

import logging

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from gru4rec_repro.contract import RunContext, validate_ranks

from .data import SessionData, item_index

log = logging.getLogger(__name__)
VARIANTS = ("gru4rec", "port")


def configure(seed: int, threads: int, device: str, logger: logging.Logger | None = None) -> str:
    """Threads, determinism and device; returns the TF device name to run on."""
    logger = logger or log
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError as e:  # the TF runtime was already initialised in this process
        logger.warning("could not set TensorFlow threads to %s (%s)", threads, e)
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(int(seed))
    gpus = tf.config.list_physical_devices("GPU")
    if device in ("auto", "gpu", "cuda") and gpus:
        return "/GPU:0"
    if device in ("gpu", "cuda"):
        logger.warning("device %r asked for but TensorFlow sees no GPU; using the CPU", device)
    return "/CPU:0"


def item_support(train: pd.DataFrame, item_ids: np.ndarray) -> np.ndarray:
    """Training events of each item, in item-index order."""
    idx = np.searchsorted(item_ids, train["ItemId"].to_numpy(dtype=np.int64))
    return np.bincount(idx, minlength=len(item_ids)).astype(np.float64)


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    params = dict(params or {})
    variant = params.pop("variant", "gru4rec")
    if variant not in VARIANTS:
        raise ValueError(f"gru4rec_keras: unknown variant {variant!r}; use one of {VARIANTS}")
    device = configure(seed, ctx.threads, ctx.device, ctx.log)
    device_name = "gpu" if device.startswith("/GPU") else "cpu"
    ctx.log.info("gru4rec_keras %s: seed %d, threads %d, device %s, params %s",
                 variant, seed, ctx.threads, device_name, params)
    item_ids = item_index(train)
    support = item_support(train, item_ids)
    with tf.device(device):
        if variant == "port":
            from .port import KerasPort

            model = KerasPort(len(item_ids), params, seed)
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
