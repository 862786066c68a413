"""``run(train, test, params, seed, ctx)``: the implementation contract for GRU4Rec in PyTorch.

Builds the item index and the model from the training split, trains (with
per-epoch checkpoints in ``ctx.outdir``), writes ``weights.npz`` and returns
the rank record of the test split. ``run.seeds_together`` (:func:`run_together`)
does the same for several seeds of one run trained as one batched model
(seeds.py), each seed in its own folder; ``gru4rec_repro.run.run_seeds`` uses
it when several seeds are left to train, unless
``GRU4REC_TORCH_SEEDS_TOGETHER=0``. From the command line::

    python -m gru4rec_repro run --implementation gru4rec_torch --train train.tsv \\
        --test test.tsv --params '{"loss": "bpr-max"}' --seed 1 --out results/x
"""
from __future__ import annotations

import pandas as pd
import torch

from gru4rec_repro.contract import RunContext, validate_ranks
from gru4rec_repro.gru4rec_params import describe

from .data import SessionData, item_index, item_support, session_data
from .model import GRU4Rec
from .seeds import seeds_together_enabled
from .train import train as train_model
from .train import train_together


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available; ``gpu`` = ``cuda``."""
    name = (name or "cpu").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "gpu":
        name = "cuda"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device


def build(train: pd.DataFrame, params: dict, seed: int, device="cpu") -> tuple[GRU4Rec, SessionData]:
    """The model (item index and support from ``train``) and its training data."""
    item_ids = item_index(train)
    model = GRU4Rec(len(item_ids), params, seed, support=item_support(train, item_ids), device=device)
    model.item_ids = item_ids
    return model, session_data(train, item_ids, "training split", time_sort=model.params["time_sort"])


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    log = ctx.log
    torch.set_num_threads(max(1, int(ctx.threads)))
    threads = torch.get_num_threads()
    device = resolve_device(ctx.device)
    model, data = build(train, params, seed, device)
    item_ids = model.item_ids
    log.info("gru4rec_torch: %d items, %d training sessions, %d events; device %s, %d threads; params %s (%s)",
             len(item_ids), data.n_sessions, data.n_events, device, threads, model.params,
             describe(model.params))
    train_model(model, data, ctx.outdir, threads=threads, device_label=str(device),
                progress=ctx.progress, log=log)
    model.save_weights(ctx.outdir / "weights.npz")
    ranks = model.evaluate(test, progress=ctx.progress)
    return validate_ranks(ranks, "gru4rec_torch rank record")


def run_together(train: pd.DataFrame, test: pd.DataFrame, params: dict, seeds: list[int],
                 ctxs: list[RunContext]) -> list[pd.DataFrame]:
    """:func:`run` for each of ``seeds`` (one ``ctxs[i]`` each: folder, threads,
    device), the seeds trained together (train.train_together); returns the
    rank records in the order of ``seeds``. The same weights (float32
    tolerance) and rank records as :func:`run` seed by seed
    (tests/test_gru4rec_torch.py). With ``GRU4REC_TORCH_SEEDS_TOGETHER=0``: :func:`run` seed by seed."""
    if len(seeds) != len(ctxs):
        raise ValueError(f"run_together: {len(seeds)} seeds but {len(ctxs)} run contexts")
    if len(seeds) == 1 or not seeds_together_enabled():
        return [run(train, test, params, s, c) for s, c in zip(seeds, ctxs)]
    ctx = ctxs[0]
    log = ctx.log
    torch.set_num_threads(max(1, int(ctx.threads)))
    threads = torch.get_num_threads()
    device = resolve_device(ctx.device)
    model, data = build(train, params, seeds[0], device)
    models = [model] + [GRU4Rec(model.n_items, params, s, support=model.support, device=device) for s in seeds[1:]]
    for m in models[1:]:
        m.item_ids = model.item_ids
    log.info("gru4rec_torch: seeds %s trained together; %d items, %d training sessions, %d events; device %s, "
             "%d threads; params %s (%s)", list(seeds), model.n_items, data.n_sessions, data.n_events, device,
             threads, model.params, describe(model.params))
    train_together(models, data, [c.outdir for c in ctxs], threads=threads, device_label=str(device),
                   progress=ctx.progress, log=log)
    ranks = []
    for m, c in zip(models, ctxs):
        m.save_weights(c.outdir / "weights.npz")
        ranks.append(validate_ranks(m.evaluate(test, progress=c.progress), "gru4rec_torch rank record"))
    return ranks


#: the contract's hook for several seeds of one run (gru4rec_repro.run.run_seeds)
run.seeds_together = run_together
