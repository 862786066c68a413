"""The implementation contract: what every model in the study takes and writes.

Every model (baseline or GRU4Rec, in whatever framework) is a module under
``implementations/`` with a function

    run(train, test, params, seed, ctx) -> pandas.DataFrame   # the rank record

* ``train`` / ``test``: DataFrames with columns ``SessionId`` (int64),
  ``ItemId`` (int64), ``Time`` (float64, unix seconds), sorted by
  (SessionId, Time) as :func:`gru4rec_repro.split.read_split` returns them.
* ``params``: the run's hyperparameters from the config (a plain dict).
* ``seed``: the run's seed; every stochastic step must derive from it.
* ``ctx``: a :class:`RunContext` (output folder for checkpoints / logs /
  weights, threads, device, logger).

The returned rank record has one row per predicted test event (every event
of a test session but the first is a target), with the columns of
:data:`RANK_COLUMNS`. Metrics are computed from it by ONE shared function,
:func:`gru4rec_repro.evaluation.metrics_from_ranks`; no model computes its
own Recall or MRR. See ``implementations/CONTRACT.md``.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

#: Column name -> dtype of a rank record.
#: session_id: test SessionId; position: 0-based index, within the session,
#: of the event whose item is the input (the target is event position + 1);
#: target: ItemId of the target; higher: number of training items scoring
#: strictly higher than the target; ties: number of OTHER items scoring
#: exactly the same as the target.
RANK_COLUMNS: dict[str, str] = {
    "session_id": "int64",
    "position": "int32",
    "target": "int64",
    "higher": "int64",
    "ties": "int64",
}

#: Implementation name (used in the config's ``runs:``) -> "module:function".
REGISTRY: dict[str, str] = {
    "pop": "implementations.baselines.pop:run",
    "spop": "implementations.baselines.spop:run",
    "iknn": "implementations.baselines.iknn:run",
    "bprmf": "implementations.baselines.bprmf:run",
    "gru4rec_torch": "implementations.gru4rec_torch.runner:run",
    "gru4rec_keras": "implementations.gru4rec_keras.runner:run",
}

#: Implementations that live outside the project, each run in its own Python
#: environment by :mod:`gru4rec_repro.external` (implementations/external/<name>/,
#: docs/AUDIT.md): the authors' official code and four libraries' GRU4Rec.
EXTERNAL = ("authors", "recbole", "cornac", "recpack", "torch_rechub")

#: Implementations whose result does not depend on the seed: the study runs
#: them once (with the first seed) instead of once per seed.
DETERMINISTIC = {"pop", "spop", "iknn"}

#: GRU4Rec implementations, ours and the audit's: their jobs take the study's
#: threads and a GPU slot, and ``study.epochs`` sets their ``n_epochs``.
NEURAL = frozenset({"gru4rec_torch", "gru4rec_keras", *EXTERNAL})


def run_params(config: dict, run: str) -> dict:
    """A run's params as its implementation gets them (the workflow and the
    plan both read them here): ``study.epochs``, when set, replaces the
    ``n_epochs`` of every GRU4Rec run but the tutorial's Keras port."""
    spec = config["runs"][run]
    params = dict(spec.get("params") or {})
    epochs = (config.get("study") or {}).get("epochs")
    if spec["implementation"] in NEURAL and params.get("variant", "gru4rec") == "gru4rec" and epochs:
        params["n_epochs"] = epochs
    return params


@dataclass
class RunContext:
    """Where and how an implementation runs."""

    outdir: Path
    threads: int = 1
    device: str = "cpu"  # "cpu", "cuda", "gpu" or "auto"
    progress: bool = True
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gru4rec_repro"))

    def __post_init__(self) -> None:
        self.outdir = Path(self.outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)


def resolve(name: str) -> Callable:
    """Return the ``run`` function of the implementation called ``name``."""
    if name in EXTERNAL:
        from .external import runner

        return runner(name)
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown implementation {name!r}; known: {', '.join(sorted([*REGISTRY, *EXTERNAL]))}"
        ) from None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def validate_ranks(ranks: pd.DataFrame, where: str = "rank record") -> pd.DataFrame:
    """Check a rank record's columns and values; return it with canonical dtypes."""
    missing = [c for c in RANK_COLUMNS if c not in ranks.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; expected {list(RANK_COLUMNS)}")
    out = ranks[list(RANK_COLUMNS)].astype(RANK_COLUMNS)
    if len(out) and ((out["higher"] < 0).any() or (out["ties"] < 0).any()):
        raise ValueError(f"{where}: negative 'higher' or 'ties' counts")
    return out.reset_index(drop=True)


def rank_counts(scores: np.ndarray, target_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference: for each row, items scoring above / tied with the target.

    ``scores``: (B, n_items); ``target_idx``: (B,) column of each row's target.
    Frameworks compute the same two counts where their scores live (on the
    GPU when there is one); this is the reference they are tested against.
    """
    t = scores[np.arange(len(target_idx)), target_idx][:, None]
    higher = np.count_nonzero(scores > t, axis=1)
    ties = np.count_nonzero(scores == t, axis=1) - 1
    return higher.astype(np.int64), ties.astype(np.int64)
