"""BPR-MF: matrix factorisation of session x item events trained with BPR-SGD.

SPEC.md section 6. Every training session is a "user" with its own factor
vector U_s; every item has a factor vector I_i and a bias b_i. One epoch
visits the training events in a random order; for each event (session s,
positive item i) one negative item j is sampled and, with
x = U_s . (I_i - I_j) + b_i - b_j and c = 1 - sigmoid(x):

    U_s += lr * ( c * (I_i - I_j) - reg * U_s)
    I_i += lr * ( c * U_s        - reg * I_i)
    I_j += lr * (-c * U_s        - reg * I_j)
    b_i += lr * ( c - bias_reg * b_i),   b_j += lr * (-c - bias_reg * b_j)

(bias_reg = reg unless set).

Defaults are the paper's: 100 factors, 10 epochs, lr 0.01, init uniform
+-0.05, no regularisation; negatives are uniform over items (a negative may
equal the positive, as in the authors' code; that event then moves nothing).

Test time: a session's vector is the mean of the ITEM factors I of its events
so far (repeats counted, as the authors' code appends every input item), and
score = session . I_j + b_j for every item j. Training session factors are not
used at test time (test sessions are new).

``quirks: true`` switches on the authors' baseline code's two quirks:
the item bias is never updated (stays 0), and the negative is the item of a
random training row among the first n_items rows (rows in (SessionId, Time)
order) instead of a uniform item.

``bias: false`` leaves the item bias at 0 (never updated) with uniform
negatives: the bias quirk alone, so that the factors alone rank the items.
``bias_reg`` regularises the item bias (default: ``reg``, as in the update
rule above); a larger value keeps the bias small next to the factor term.

Diagnostics (``<outdir>/diagnostics.json``, written after ranking): how much
of the scores comes from the item bias and how much from the factors. A score
is s_ej = f_ej + b_j with the factor term f_ej = session_e . I_j; only the
spread of the scores across items matters for the ranking, so for every test
prediction event e the two terms are compared by their variance across all
items j:

    score_share_bias    = mean over events e of Var_j(b_j) / (Var_j(b_j) + Var_j(f_ej))
    score_share_factors = 1 - score_share_bias

(the covariance of the two terms is left out, so the shares are in [0, 1] and
sum to 1; an event where both variances are 0 is left out of the mean). The
file also holds ``sd_bias`` (the standard deviation of b across items),
``mean_sd_factors`` (the mean over events of the standard deviation of f_e
across items), ``n_events`` and the ``definition`` above as a string. On the
authors' real RSC15 data the learned bias outweighs the factor part by an
order of magnitude after 10 epochs and BPR-MF ranks like POP (issue 10).

Vectorisation (a deviation in update order, not in the update rule): the
shuffled events are processed in chunks of ``chunk`` (1024) events; every
update of a chunk is computed from the parameters as they were at the start of
the chunk, and updates of the same row are summed (``index_add_``). With
chunk 1 this is exactly per-event SGD. Training runs in float32 with PyTorch
on the CPU; the random draws come from ``numpy.random.default_rng(seed)``.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from gru4rec_repro import atomic
from gru4rec_repro.contract import RunContext

from .common import (
    PredictionEvents, check_split, index_sessions, default_block, index_items, log, rank_events,
    resolve_params, write_npz,
)

#: ``definition`` of diagnostics.json (module docstring).
SHARE_DEFINITION = (
    "score s_ej = f_ej + b_j (factor term session_e . I_j plus item bias b_j); over the test "
    "prediction events e: score_share_bias = mean_e Var_j(b_j) / (Var_j(b_j) + Var_j(f_ej)), "
    "variances across all items j; score_share_factors = 1 - score_share_bias"
)

DEFAULTS = {
    "factors": 100,
    "n_epochs": 10,
    "learning_rate": 0.01,
    "reg": 0.0,
    "init_scale": 0.05,
    "quirks": False,
    "bias": True,
    "bias_reg": None,
    "chunk": 1024,
}


def sample_negatives(rng: np.random.Generator, train_item_idx: np.ndarray, n_items: int, size: int,
                     quirks: bool = False) -> np.ndarray:
    """Negative item indices: uniform over items, or (quirks) the item of a random
    training row among the first ``n_items`` rows."""
    if quirks:
        return train_item_idx[rng.integers(0, min(n_items, len(train_item_idx)), size)]
    return rng.integers(0, n_items, size)


class BPRMF:
    """BPR-MF baseline. ``fit`` learns item factors and biases; ``score_block`` ranks."""

    def __init__(self, factors: int = 100, n_epochs: int = 10, learning_rate: float = 0.01,
                 reg: float = 0.0, init_scale: float = 0.05, quirks: bool = False,
                 bias: bool = True, bias_reg: float | None = None,
                 chunk: int = 1024, seed: int = 0, threads: int = 1, progress: bool = False):
        if factors < 1 or n_epochs < 0 or chunk < 1:
            raise ValueError(f"bprmf: need factors >= 1, n_epochs >= 0, chunk >= 1; "
                             f"got {factors}, {n_epochs}, {chunk}")
        self.factors, self.n_epochs, self.chunk = int(factors), int(n_epochs), int(chunk)
        self.learning_rate, self.reg, self.init_scale = float(learning_rate), float(reg), float(init_scale)
        self.quirks, self.seed, self.progress = bool(quirks), int(seed), progress
        if not isinstance(bias, bool):
            raise ValueError(f"bprmf: bias must be true or false, got {bias!r}")
        self.bias = bias and not self.quirks  # the quirk never updates the bias
        self.bias_reg = self.reg if bias_reg is None else float(bias_reg)
        if self.bias_reg < 0:
            raise ValueError(f"bprmf: bias_reg must be >= 0, got {bias_reg}")
        self.threads = max(1, int(threads))
        self.epoch_log: list[dict] = []

    def fit(self, train: pd.DataFrame, on_epoch=None) -> "BPRMF":
        """Train; ``on_epoch(entry)`` is called after every epoch with its log entry.

        PyTorch runs with ``threads`` threads during the fit (the chunks are small:
        one thread is fastest, and extra threads stall badly on a busy machine).
        """
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._fit(train, on_epoch)
        finally:
            torch.set_num_threads(previous_threads)

    def _fit(self, train: pd.DataFrame, on_epoch) -> "BPRMF":
        train = check_split(train, "train")
        self.item_ids, item_idx = index_items(train)
        session_idx = index_sessions(train)
        n_items, n_sessions, n_events = len(self.item_ids), int(session_idx.max()) + 1, len(train)
        rng = np.random.default_rng(self.seed)
        U = torch.from_numpy(self._uniform_init(rng, n_sessions))
        I = torch.from_numpy(self._uniform_init(rng, n_items))
        b = torch.zeros(n_items, dtype=torch.float32)
        lr, reg, bias_reg = self.learning_rate, self.reg, self.bias_reg
        sessions_t = torch.from_numpy(session_idx.astype(np.int64))
        items_t = torch.from_numpy(item_idx)
        for epoch in range(1, self.n_epochs + 1):
            t0 = time.perf_counter()
            order = torch.from_numpy(rng.permutation(n_events))
            negatives = torch.from_numpy(sample_negatives(rng, item_idx, n_items, n_events, self.quirks))
            loss_sum = 0.0
            for a in tqdm(range(0, n_events, self.chunk), desc=f"bprmf epoch {epoch}",
                          disable=not self.progress, unit="chunk", mininterval=2.0):
                rows = order[a:a + self.chunk]
                u, i, j = sessions_t[rows], items_t[rows], negatives[a:a + self.chunk]
                Uu, Ii, Ij = U[u], I[i], I[j]
                x = (Uu * (Ii - Ij)).sum(1) + b[i] - b[j]
                loss_sum += float(torch.nn.functional.softplus(-x).sum())  # -log sigmoid(x)
                c = torch.sigmoid(-x)[:, None]
                U.index_add_(0, u, lr * (c * (Ii - Ij) - reg * Uu))
                I.index_add_(0, i, lr * (c * Uu - reg * Ii))
                I.index_add_(0, j, lr * (-c * Uu - reg * Ij))
                if self.bias:  # both steps from the biases at the start of the chunk
                    bi, bj = b[i], b[j]
                    b.index_add_(0, i, lr * (c[:, 0] - bias_reg * bi))
                    b.index_add_(0, j, lr * (-c[:, 0] - bias_reg * bj))
            seconds = time.perf_counter() - t0
            entry = {"epoch": epoch, "loss": loss_sum / max(n_events, 1), "seconds": seconds,
                     "events_per_s": n_events / seconds if seconds > 0 else None,
                     "threads": torch.get_num_threads(), "device": "cpu"}
            self.epoch_log.append(entry)
            log.info("bprmf epoch %d: loss %.4f, %.1f s", epoch, entry["loss"], seconds)
            if on_epoch is not None:
                on_epoch(entry)
        self.item_factors = I.numpy()
        self.item_bias = b.numpy()
        return self

    def _uniform_init(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """Uniform in [-init_scale, init_scale), drawn directly in float32 (RSC15 has
        8M sessions: a float64 draw would need 6.4 GB for the session factors alone)."""
        w = rng.random((rows, self.factors), dtype=np.float32)
        w *= 2 * self.init_scale
        w -= self.init_scale
        return w

    def session_vectors(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        """Mean item factor of each prediction event's session so far."""
        counts = events.history_counts(rows)
        lengths = np.asarray(counts.sum(axis=1), dtype=np.float32)
        return np.asarray(counts @ self.item_factors, dtype=np.float32) / lengths

    def factor_scores(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_items) factor term f_ej = session_e . I_j of the scores."""
        return self.session_vectors(events, rows) @ self.item_factors.T

    def score_block(self, events: PredictionEvents, rows: np.ndarray) -> np.ndarray:
        return self.factor_scores(events, rows) + self.item_bias


class ScoreShares:
    """Accumulates the bias / factor shares of the scores over blocks of events (module docstring).

    The variance across items of a factor term f_ej = v_e . I_j is the quadratic
    form v_e^T C v_e, C the (factors x factors) covariance of the item factor
    rows across items (population covariance, as ``numpy.var``): computed from
    the session vectors alone, without another pass over the scores.
    """

    def __init__(self, item_bias: np.ndarray, item_factors: np.ndarray):
        self.var_bias = float(np.var(np.asarray(item_bias, dtype=np.float64)))
        factors = np.asarray(item_factors, dtype=np.float64)
        centred = factors - factors.mean(axis=0)
        self.factor_cov = centred.T @ centred / max(len(factors), 1)
        self.share_sum = 0.0
        self.sd_factors_sum = 0.0
        self.n_events = 0
        self.n_shares = 0

    def add(self, session_vectors: np.ndarray) -> None:
        """Add a (B, factors) block of session vectors v_e."""
        v = np.asarray(session_vectors, dtype=np.float64)
        var_f = np.maximum(np.einsum("bk,kl,bl->b", v, self.factor_cov, v), 0.0)
        total = self.var_bias + var_f
        ok = total > 0
        self.share_sum += float(np.sum(self.var_bias / total[ok]))
        self.n_shares += int(ok.sum())
        self.sd_factors_sum += float(np.sum(np.sqrt(var_f)))
        self.n_events += len(var_f)

    def result(self) -> dict:
        bias = self.share_sum / self.n_shares if self.n_shares else None
        return {
            "score_share_bias": bias,
            "score_share_factors": None if bias is None else 1.0 - bias,
            "sd_bias": float(np.sqrt(self.var_bias)),
            "mean_sd_factors": self.sd_factors_sum / self.n_events if self.n_events else None,
            "n_events": self.n_events,
            "definition": SHARE_DEFINITION,
        }


def rank_with_shares(model: BPRMF, events: PredictionEvents, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """The rank record of ``events`` and the score shares of diagnostics.json, in one pass."""
    shares = ScoreShares(model.item_bias, model.item_factors)

    def score(rows: np.ndarray) -> np.ndarray:
        vectors = model.session_vectors(events, rows)
        shares.add(vectors)
        return vectors @ model.item_factors.T + model.item_bias

    ranks = rank_events(events, score, block=default_block(len(model.item_ids), itemsize=4),
                        progress=progress, desc="bprmf ranking")
    return ranks, shares.result()


def run(train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int, ctx: RunContext) -> pd.DataFrame:
    """Rank record of BPR-MF trained with ``seed``; also writes ``diagnostics.json``."""
    p = resolve_params(params, DEFAULTS, "bprmf")
    model = BPRMF(**p, seed=seed, threads=ctx.threads, progress=ctx.progress)
    log_lines: list[str] = []

    def write_epoch(entry: dict) -> None:
        log_lines.append(json.dumps(entry))
        atomic.write_text("\n".join(log_lines) + "\n", ctx.outdir / "train_log.jsonl")

    model.fit(train, on_epoch=write_epoch)
    write_npz(ctx.outdir / "weights.npz", item_ids=model.item_ids,
              item_factors=model.item_factors, item_bias=model.item_bias)
    events = PredictionEvents.from_test(test, model.item_ids)
    ranks, diagnostics = rank_with_shares(model, events, progress=ctx.progress)
    atomic.write_json(diagnostics, ctx.outdir / "diagnostics.json")
    ctx.log.info("bprmf: score share of the item bias %s, of the factors %s",
                 diagnostics["score_share_bias"], diagnostics["score_share_factors"])
    return ranks
