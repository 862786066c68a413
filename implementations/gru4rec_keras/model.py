"""GRU4Rec in backend-agnostic Keras 3: the model, its compiled train step, scoring.

The class follows the low-level API shared with the PyTorch implementation
(``implementations/GRU4REC_API.md``)::

    GRU4Rec(n_items, params, seed, support=None)
    .reset_lanes(mask) / .keep_lanes(idx)
    .train_step(in_idx, out_idx, neg_idx) -> float
    .save_weights(path) / .load_weights(path)
    .score(in_idx) -> (B, n_items)
    .evaluate(test) -> rank record

Everything here is ``keras.ops`` on Keras variables; the same code runs on
TensorFlow, JAX and PyTorch (the process's Keras backend, see ``__init__``).
The train step is a pure function of the variables' values (weights,
optimizer slots, the dropout generator's state) and the batch; it returns the
loss, the new hidden state and the new values, which :mod:`.compiled`
compiles and writes back for the backend. The gradients of the item matrices
are taken with respect to the rows the step gathers, so only those rows are
updated (:mod:`.optim`).

The hidden state is a list of tensors (one per layer) carried between calls
and passed into the compiled functions; a reset requested by ``reset_lanes``
is applied inside the next compiled call. On TensorFlow the compiled functions
take a ``None`` batch dimension (the shrinking batch at the end of an epoch
does not retrace them); JAX compiles once per batch size.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os

import keras
import numpy as np
import pandas as pd
from keras import ops

from gru4rec_repro.atomic import atomic_path
from gru4rec_repro.contract import RANK_COLUMNS
from gru4rec_repro.gru4rec_params import OFFICIAL_DEFAULTS, OUR_DEFAULTS, dropout_rates, resolve

from . import BACKENDS, DEFAULT_BACKEND, compiled, losses
from .compiled import Spec
from .data import SessionData, session_parallel
from .layers import Dropout, ItemMatrix, OneHotGRU, gru_cell
from .optim import AdagradMomentum

log = logging.getLogger(__name__)

#: Keras-only keys and their defaults (the others: gru4rec_repro.gru4rec_params).
KERAS_ONLY: dict = {
    "jit_compile": False,  # XLA on TensorFlow (JAX: always XLA), torch.compile on PyTorch
    "backend": DEFAULT_BACKEND,  # the Keras backend: tensorflow, jax or torch (set per process)
}
#: Every hyperparameter and its default: the official PyTorch code's defaults
#: (``OFFICIAL_DEFAULTS``), this project's keys (``OUR_DEFAULTS``) and ``KERAS_ONLY``.
DEFAULTS: dict = {**OFFICIAL_DEFAULTS, **OUR_DEFAULTS, **KERAS_ONLY}

WEIGHTS_FORMAT = 1


def parse_params(params: dict | None) -> dict:
    """The complete settings of a run: :func:`gru4rec_repro.gru4rec_params.resolve`
    (official defaults, ``params_file``/``ps``, the ELU rule of BPR-max) plus the
    Keras-only keys; unknown names, contradictions and bad values are errors.
    ``backend`` left out is the backend Keras runs on in this process; given, it
    must be that one."""
    given = "backend" in (params or {})
    p = resolve(params, extra=KERAS_ONLY)
    p["jit_compile"] = bool(p["jit_compile"])
    running = keras.backend.backend()
    if not given:
        p["backend"] = running
    if p["backend"] not in BACKENDS:
        raise ValueError(f"GRU4Rec (Keras): backend must be one of {', '.join(BACKENDS)}, not {p['backend']!r}")
    if p["backend"] != running:
        raise RuntimeError(f"GRU4Rec (Keras): backend {p['backend']!r} asked for, but Keras runs on {running!r} "
                           f"in this process (set KERAS_BACKEND={p['backend']} before Keras is imported; "
                           "implementations.gru4rec_keras.use_backend)")
    losses.final_activation(p["final_act"])  # resolve() knows the same names
    return p


def _uniform(rng: np.random.Generator, shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


# Keras GRUCell packs gate blocks (update z, reset r, new n) along its columns;
# the neutral file stacks them (reset, update, new) along rows, as PyTorch does.
def _keras_to_neutral(m: np.ndarray, units: int) -> np.ndarray:
    z, r, n = m[..., :units], m[..., units:2 * units], m[..., 2 * units:]
    return np.concatenate([r, z, n], axis=-1).T if m.ndim == 2 else np.concatenate([r, z, n])


def _neutral_to_keras(m: np.ndarray, units: int) -> np.ndarray:
    r, z, n = m[:units], m[units:2 * units], m[2 * units:]
    return np.concatenate([z, r, n], axis=0).T if m.ndim == 2 else np.concatenate([z, r, n])


class GRU4Rec:
    """GRU4Rec (SPEC.md section 4) with Keras 3 layers and a compiled train step."""

    def __init__(self, n_items: int, params: dict | None, seed: int, support: np.ndarray | None = None):
        self.p = p = parse_params(params)
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.item_ids = np.arange(self.n_items, dtype=np.int64)  # the runner sets the real ItemIds
        self.units = p["layers"]
        if p["constrained_embedding"]:
            self.mode, d_in = "constrained", self.units[-1]
        elif p["embedding"] > 0:
            self.mode, d_in = "embedding", p["embedding"]
        else:
            self.mode, d_in = "onehot", None
        # one seed, three independent streams: weight init, dropout, extra samples
        init_seed, dropout_seed, sample_seed = (int(x) for x in np.random.SeedSequence(self.seed).generate_state(3))
        self.init_seed, self.sample_seed = init_seed, sample_seed
        # 31 bits: the torch backend holds the generator's seed as a signed int32
        self.generator = keras.random.SeedGenerator(dropout_seed >> 1, name="dropout_generator")

        self.Wy = ItemMatrix(self.n_items, self.units[-1], bias=True, name="Wy")
        self.E = ItemMatrix(self.n_items, d_in, name="E") if self.mode == "embedding" else None
        self.first = OneHotGRU(self.n_items, self.units[0], name="gru0") if self.mode == "onehot" else None
        self.cells: list[keras.layers.GRUCell | None] = []
        for layer, units in enumerate(self.units):
            if layer == 0 and self.mode == "onehot":
                self.cells.append(None)
                continue
            cell = keras.layers.GRUCell(units, reset_after=True, name=f"gru{layer}")
            cell.build((None, d_in if layer == 0 else self.units[layer - 1]))
            self.cells.append(cell)
        #: dropout probability of each site (only sites with p > 0 are applied)
        self.dropout_p = {site: rate for site, rate in dropout_rates(p).items() if rate > 0}
        self.dropouts = {site: Dropout(rate, self.generator) for site, rate in self.dropout_p.items()}
        #: test hook (GRU4REC_API.md): ``dropout_mask_fn(site, shape)`` -> float32 mask
        #: (0 or 1/(1-p)) used instead of drawing one, once per step and site, sites in order
        self.dropout_mask_fn = None
        self.set_weights(self.initial_weights())

        # sparse (item-row) variables first, then the dense GRU weights, by name
        sparse = {"Wy": self.Wy.W, "By": self.Wy.b}
        if self.E is not None:
            sparse["E"] = self.E.W
        dense = {}
        if self.first is not None:
            sparse["gru0.Wx"] = self.first.Wx
            dense.update({"gru0.Wrz": self.first.Wrz, "gru0.Wh": self.first.Wh, "gru0.b": self.first.b})
        for layer, cell in enumerate(self.cells):
            if cell is not None:
                dense.update({f"gru{layer}.kernel": cell.kernel, f"gru{layer}.recurrent_kernel": cell.recurrent_kernel,
                              f"gru{layer}.bias": cell.bias})
        self.sparse_names, self.dense_names = list(sparse), list(dense)
        self.sparse_vars, self.dense_vars = list(sparse.values()), list(dense.values())
        self.variables = self.sparse_vars + self.dense_vars
        self.optimizer = AdagradMomentum(self.variables, p["learning_rate"], p["momentum"])
        #: everything the train step reads and writes: weights, slots, the dropout generator
        self.state_vars = self.variables + self.optimizer.acc + self.optimizer.vel + [self.generator.state]

        if support is not None:
            support = np.asarray(support, dtype=np.float64)
            if support.shape != (self.n_items,) or (support <= 0).any():
                raise ValueError(f"GRU4Rec (Keras): support must be ({self.n_items},) positive counts")
        elif p["logq"] > 0:
            raise ValueError("GRU4Rec (Keras): logq > 0 needs the item support")
        self.log_support = ops.convert_to_tensor(
            (np.log(support) if support is not None else np.zeros(self.n_items)).astype(np.float32))
        self.final_act = losses.final_activation(p["final_act"], p["elu_param"])
        #: fixed-shape steps (a backend that compiles once per shape): the shrinking tail of an
        #: epoch is padded to the batch size, the evaluation's to its first width
        self.pad = compiled.fixed_shapes(p["jit_compile"])
        #: shapes inside a step stay fixed (XLA: JAX, TensorFlow with jit_compile; torch.compile)
        self.static = self.pad or p["jit_compile"]
        self._build_functions()
        self.H = self._zero_state(p["batch_size"])
        self._pending_reset: np.ndarray | None = None

    # ----- weights ---------------------------------------------------------------------------
    def initial_weights(self) -> dict[str, np.ndarray]:
        """Uniform +-sqrt(6/(fan_in+fan_out)) per matrix (each gate block its own), biases 0."""
        rng = np.random.default_rng(self.init_seed)
        n, out = self.n_items, self.units[-1]
        w = {"Wy": _uniform(rng, (n, out), n, out), "By": np.zeros(n, np.float32)}
        if self.mode == "embedding":
            w["E"] = _uniform(rng, (n, self.p["embedding"]), n, self.p["embedding"])
        for layer, H in enumerate(self.units):
            if layer == 0 and self.mode == "onehot":
                w["gru0.Wx"] = np.concatenate([_uniform(rng, (n, H), n, H) for _ in range(3)], axis=1)
                w["gru0.Wrz"] = np.concatenate([_uniform(rng, (H, H), H, H) for _ in range(2)], axis=1)
                w["gru0.Wh"] = _uniform(rng, (H, H), H, H)
                w["gru0.b"] = np.zeros(3 * H, np.float32)
                continue
            d_in = self.cells[layer].kernel.shape[0]
            w[f"gru{layer}.W_ih"] = np.concatenate([_uniform(rng, (H, d_in), H, d_in) for _ in range(3)])
            w[f"gru{layer}.W_hh"] = np.concatenate([_uniform(rng, (H, H), H, H) for _ in range(3)])
            w[f"gru{layer}.b_ih"] = np.zeros(3 * H, np.float32)
            w[f"gru{layer}.b_hh"] = np.zeros(3 * H, np.float32)
        return w

    def get_weights(self) -> dict[str, np.ndarray]:
        """The weights in the neutral layout of GRU4REC_API.md."""
        w = {"Wy": self.Wy.W.numpy(), "By": self.Wy.b.numpy()}
        if self.E is not None:
            w["E"] = self.E.W.numpy()
        if self.first is not None:
            w.update({"gru0.Wx": self.first.Wx.numpy(), "gru0.Wrz": self.first.Wrz.numpy(),
                      "gru0.Wh": self.first.Wh.numpy(), "gru0.b": self.first.b.numpy()})
        for layer, cell in enumerate(self.cells):
            if cell is None:
                continue
            H = cell.units
            bias = cell.bias.numpy()  # (2, 3H): input bias, recurrent bias
            w[f"gru{layer}.W_ih"] = _keras_to_neutral(cell.kernel.numpy(), H)
            w[f"gru{layer}.W_hh"] = _keras_to_neutral(cell.recurrent_kernel.numpy(), H)
            w[f"gru{layer}.b_ih"] = _keras_to_neutral(bias[0], H)
            w[f"gru{layer}.b_hh"] = _keras_to_neutral(bias[1], H)
        return {k: np.array(v, dtype=np.float32) for k, v in w.items()}

    def set_weights(self, w: dict[str, np.ndarray], where: str = "weights") -> None:
        def take(name, shape):
            if name not in w:
                raise ValueError(f"{where}: missing array {name!r}")
            a = np.asarray(w[name], dtype=np.float32)
            if a.shape != tuple(shape):
                raise ValueError(f"{where}: {name} has shape {a.shape}, expected {tuple(shape)}")
            return a

        self.Wy.W.assign(take("Wy", self.Wy.W.shape))
        self.Wy.b.assign(take("By", self.Wy.b.shape))
        if self.E is not None:
            self.E.W.assign(take("E", self.E.W.shape))
        if self.first is not None:
            for name in ("Wx", "Wrz", "Wh", "b"):
                var = getattr(self.first, name)
                var.assign(take(f"gru0.{name}", var.shape))
        for layer, cell in enumerate(self.cells):
            if cell is None:
                continue
            H, d_in = cell.units, cell.kernel.shape[0]
            cell.kernel.assign(_neutral_to_keras(take(f"gru{layer}.W_ih", (3 * H, d_in)), H))
            cell.recurrent_kernel.assign(_neutral_to_keras(take(f"gru{layer}.W_hh", (3 * H, H)), H))
            cell.bias.assign(np.stack([_neutral_to_keras(take(f"gru{layer}.b_ih", (3 * H,)), H),
                                       _neutral_to_keras(take(f"gru{layer}.b_hh", (3 * H,)), H)]))

    def meta(self) -> dict:
        return {"layers": self.units, "embedding": self.p["embedding"],
                "constrained_embedding": self.p["constrained_embedding"], "format": WEIGHTS_FORMAT}

    def save_weights(self, path) -> None:
        arrays = {"item_ids": self.item_ids.astype(np.int64), "meta": np.array(json.dumps(self.meta())),
                  **self.get_weights()}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load_weights(self, path) -> None:
        where = os.fspath(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        if "meta" not in arrays:
            raise ValueError(f"{where}: not a GRU4Rec weights file (no 'meta')")
        meta = json.loads(str(arrays["meta"]))
        mine = self.meta()
        for key in ("layers", "embedding", "constrained_embedding"):
            if meta.get(key) != mine[key]:
                raise ValueError(f"{where}: {key}={meta.get(key)!r} but this model has {mine[key]!r}")
        if "item_ids" in arrays:
            if len(arrays["item_ids"]) != self.n_items:
                raise ValueError(f"{where}: {len(arrays['item_ids'])} items, model has {self.n_items}")
            self.item_ids = arrays["item_ids"].astype(np.int64)
        self.set_weights(arrays, where)

    # ----- hidden state ----------------------------------------------------------------------
    def _zero_state(self, lanes: int) -> list:
        return [ops.zeros((lanes, H), "float32") for H in self.units]

    def reset_lanes(self, mask) -> None:
        """Zero the hidden state of the lanes where ``mask`` is true (before the next step)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.H[0].shape[0],):
            raise ValueError(f"reset mask of shape {mask.shape} for {self.H[0].shape[0]} lanes")
        self._pending_reset = mask if self._pending_reset is None else (self._pending_reset | mask)

    def keep_lanes(self, idx) -> None:
        """Keep only these lanes (the batch shrinks)."""
        idx = np.asarray(idx, dtype=np.int32)
        self.H = [ops.take(h, idx, axis=0) for h in self.H]
        if self._pending_reset is not None:
            self._pending_reset = self._pending_reset[idx]

    def reset_state(self, lanes: int | None = None) -> None:
        self.H = self._zero_state(self.p["batch_size"] if lanes is None else lanes)
        self._pending_reset = None

    def _take_reset(self) -> np.ndarray:
        mask = self._pending_reset
        self._pending_reset = None
        return np.zeros(self.H[0].shape[0], dtype=bool) if mask is None else mask

    # ----- the network (pure functions of the variables' values) -----------------------------
    def mask_shapes(self, lanes: int) -> dict[str, tuple[int, int]]:
        """The shape of each dropout site's mask for ``lanes`` lanes, sites in order."""
        d_in = {"embedding": self.p["embedding"], "constrained": self.units[-1]}.get(self.mode)
        shapes = {"embed": (lanes, d_in)} if d_in else {}
        shapes.update({f"hidden{i}": (lanes, H) for i, H in enumerate(self.units)})
        return {site: shape for site, shape in shapes.items() if site in self.dropout_p}

    def _network(self, first, H, dense: dict, masks: dict) -> list:
        """One step of the GRU stack from the gathered input rows ``first`` (E, Wy or the
        one-hot layer's Wx rows); returns the new (dropped-out where ``masks`` say) states."""
        def drop(x, site):
            return x * masks[site] if site in masks else x

        H_new = []
        if self.mode == "onehot":
            x = drop(OneHotGRU.pure(self.units[0], first, dense["gru0.Wrz"], dense["gru0.Wh"], dense["gru0.b"],
                                    H[0]), "hidden0")
            H_new.append(x)
        else:
            x = drop(first, "embed")
        for layer, cell in enumerate(self.cells):
            if cell is None:
                continue
            x = gru_cell(cell.units, dense[f"gru{layer}.kernel"], dense[f"gru{layer}.recurrent_kernel"],
                         dense[f"gru{layer}.bias"], x, H[layer])
            x = drop(x, f"hidden{layer}")
            H_new.append(x)
        return H_new

    def _input_name(self) -> str:
        return {"constrained": "Wy", "embedding": "E", "onehot": "gru0.Wx"}[self.mode]

    def _row_indices(self, in_idx, Y) -> list:
        """The rows each sparse variable's step gathers (repeats allowed)."""
        where = {"Wy": ops.concatenate([in_idx, Y]) if self.mode == "constrained" else Y, "By": Y,
                 "E": in_idx, "gru0.Wx": in_idx}
        return [where[name] for name in self.sparse_names]

    def _forward(self, diff, H, masks, log_q, active, cols):
        """Loss (sum over lanes / nominal batch size) from the gathered rows and dense values.
        ``diff``: the rows of each sparse variable (constrained mode: Wy's input rows first, then
        its output rows, gathered apart so that neither is a slice of the other), then the dense values."""
        if self.mode == "constrained":
            first, diff = diff[0], diff[1:]
        ns = len(self.sparse_names)
        rows = dict(zip(self.sparse_names, diff[:ns]))
        dense = dict(zip(self.dense_names, diff[ns:]))
        if self.mode != "constrained":
            first = rows[self._input_name()]
        H_new = self._network(first, H, dense, masks)
        R = self.final_act(ItemMatrix.scores(H_new[-1], rows["Wy"], rows["By"]))
        rows_loss = losses.row_losses(self.p["loss"], R, log_q, self.p["logq"], self.p["bpreg"], cols)
        loss_sum = ops.sum(rows_loss if active is None else rows_loss * active)
        # the loss SPEC.md defines: summed over the lanes / NOMINAL batch size
        return loss_sum / float(self.p["batch_size"]), (loss_sum, H_new)

    @staticmethod
    def _reset(H, mask):
        return [ops.where(mask[:, None], ops.zeros_like(h), h) for h in H]

    def _pure_masks(self, values, lanes):
        """The dropout masks of one training step of ``lanes`` lanes, one per site in order, from
        the generator's state ``values[0]``: (masks, [write of the generator's new state]). The
        draws: compiled.uniform_draws (TensorFlow's stateless ops keyed by the state; Keras'
        ``keras.random.uniform`` elsewhere)."""
        shapes = self.mask_shapes(1)
        draws, new_seed = compiled.uniform_draws(self.generator, values[0],
                                                 [(lanes, width) for _, width in shapes.values()])
        return tuple(self.dropouts[site].scale(u) for site, u in zip(shapes, draws)), [("all", new_seed)]

    def _pure_train(self, values, H, in_idx, out_idx, neg_idx, reset_mask, active, masks=None):
        """One training step on the values of ``state_vars``: ((loss sum, new state), writes).
        ``active``: 1 for the lanes of the batch, 0 for padding lanes (fixed-shape steps: their
        rows and their targets' columns count nowhere, and their indices repeat lane 0's, whose
        rows get exactly zero more gradient from them); ignored when the model does not pad."""
        nw = len(self.variables)
        w, acc, vel, seed = values[:nw], values[nw:2 * nw], values[2 * nw:3 * nw], values[3 * nw]
        H = self._reset(H, reset_mask)
        Y = ops.concatenate([out_idx, neg_idx])
        idx = self._row_indices(in_idx, Y)
        seed_write = None
        if masks is None:
            masks = {}
            if self.dropout_p:
                drawn, (seed_write,) = self._pure_masks([seed], ops.shape(in_idx)[0])
                masks = dict(zip(self.mask_shapes(1), drawn))
        else:
            masks = dict(zip(self.mask_shapes(1), masks))
        log_q = None
        if self.p["loss"] == "cross-entropy" and self.p["logq"] > 0:
            log_q = ops.concatenate([ops.take(self.log_support, out_idx, axis=0),
                                     self.p["sample_alpha"] * ops.take(self.log_support, neg_idx, axis=0)])
        ns = len(self.sparse_names)
        diff = [compiled.take_rows(w[i], idx[i]) for i in range(ns)] + list(w[ns:])
        if self.mode == "constrained":  # Wy's input rows and output rows apart
            diff = [compiled.take_rows(w[0], in_idx), compiled.take_rows(w[0], Y)] + diff[1:]
        cols = None
        if self.pad:
            cols = ops.concatenate([active, ops.ones(ops.shape(neg_idx), "float32")])
        else:
            active = None
        (_, (loss_sum, H_new)), grads = compiled.value_and_grad(self._forward)(diff, H, masks, log_q, active, cols)
        if self.mode == "constrained":
            grads = [ops.concatenate([grads[0], grads[1]])] + list(grads[2:])
        w_out, acc_out, vel_out = [], [], []
        for i in range(nw):
            if i < ns:
                rows, w_rows, acc_rows, vel_rows = self.optimizer.sparse(w[i], acc[i], vel[i], idx[i], grads[i],
                                                                       self.static)
                w_out.append(("rows", rows, w_rows))
                acc_out.append(("rows", rows, acc_rows))
                vel_out.append(("rows", rows, vel_rows))
            else:
                w_new, acc_new, vel_new = self.optimizer.dense(w[i], acc[i], vel[i], grads[i])
                w_out.append(("all", w_new))
                acc_out.append(("all", acc_new))
                vel_out.append(("all", vel_new))
        H_new = tuple(ops.stop_gradient(h) for h in H_new)
        return (loss_sum, H_new), w_out + acc_out + vel_out + [seed_write]

    def _pure_score(self, values, H, in_idx, reset_mask):
        """Scores of all items (no dropout) and the new state."""
        w = dict(zip(self.sparse_names + self.dense_names, values))
        H_new = self._network(ops.take(w[self._input_name()], in_idx, axis=0), self._reset(H, reset_mask), w, {})
        return ItemMatrix.scores(H_new[-1], w["Wy"], w["By"]), tuple(H_new)

    def _pure_rank(self, values, H, in_idx, target_idx, reset_mask):
        scores, H_new = self._pure_score(values, H, in_idx, reset_mask)
        target = ops.take_along_axis(scores, target_idx[:, None], axis=1)
        higher = ops.sum(ops.cast(scores > target, "int32"), axis=1)
        ties = ops.sum(ops.cast(scores == target, "int32"), axis=1) - 1
        return higher, ties, H_new

    def _cache_key(self, name: str) -> tuple:
        """What a compiled step of this model depends on besides its arguments and the values of
        its variables: the settings, the item count and the log-support constant (equal keys:
        one compiled step per process, :func:`.compiled.step_function`)."""
        support = hashlib.sha256(ops.convert_to_numpy(self.log_support).tobytes()).hexdigest()
        return (name, json.dumps(self.p, sort_keys=True, default=str), self.n_items, self.mode, self.pad, support)

    def _build_functions(self) -> None:
        state = tuple(Spec((None, H), "float32") for H in self.units)
        idx, mask, active = Spec((None,), "int32"), Spec((None,), "bool"), Spec((None,), "float32")
        masks = tuple(Spec((None, shape[1]), "float32") for shape in self.mask_shapes(1).values())
        jit, key = self.p["jit_compile"], self._cache_key
        self._train = compiled.step_function(self._pure_train, self.state_vars, jit,
                                             [state, idx, idx, idx, mask, active], cache_key=key("train"))
        self._train_masked = compiled.step_function(self._pure_train, self.state_vars, jit,
                                                    [state, idx, idx, idx, mask, active, masks],
                                                    cache_key=key("train_masked"))
        #: the masks drawn by a step of their own before an XLA train step (TensorFlow with
        #: jit_compile: its XLA random draw costs more than the rest of the step; the same numbers)
        self._draw_masks = None
        if self.dropout_p and compiled.draws_outside_xla(jit):
            self._draw_masks = compiled.step_function(self._pure_masks, [self.generator.state], False,
                                                      [Spec((), "int32")])
        self._score = compiled.step_function(self._pure_score, self.variables, jit, [state, idx, mask],
                                             writes=False, cache_key=key("score"))
        self._rank = compiled.step_function(self._pure_rank, self.variables, jit, [state, idx, idx, mask],
                                            writes=False, cache_key=key("rank"))

    # ----- the API ---------------------------------------------------------------------------
    def train_step(self, in_idx, out_idx, neg_idx=None) -> float:
        """One mini-batch; returns the loss (summed over lanes / nominal batch size)."""
        return float(ops.convert_to_numpy(self.train_step_tensor(in_idx, out_idx, neg_idx))) / self.p["batch_size"]

    def train_step_tensor(self, in_idx, out_idx, neg_idx=None):
        """One mini-batch; returns the SUM of the per-row losses as a tensor (no host sync)."""
        if neg_idx is None:
            neg_idx = np.zeros(0, np.int32)
        in_idx, out_idx = np.asarray(in_idx, np.int32), np.asarray(out_idx, np.int32)
        reset, H, lanes = self._take_reset(), tuple(self.H), len(in_idx)
        masks = None
        if self.dropout_mask_fn is not None:
            masks = tuple(np.asarray(self.dropout_mask_fn(site, shape), dtype=np.float32)
                          for site, shape in self.mask_shapes(lanes).items())
        pad = self.p["batch_size"] - lanes if self.pad else 0
        if pad > 0:  # a fixed-shape step: padding lanes repeat lane 0's items, from zero state
            in_idx = np.concatenate([in_idx, np.full(pad, in_idx[0], np.int32)])
            out_idx = np.concatenate([out_idx, np.full(pad, out_idx[0], np.int32)])
            reset = np.concatenate([reset, np.zeros(pad, bool)])
            H = tuple(ops.concatenate([h, ops.zeros((pad, h.shape[1]), "float32")]) for h in H)
            if masks is not None:
                masks = tuple(np.concatenate([m, np.zeros((pad, m.shape[1]), np.float32)]) for m in masks)
        active = (np.arange(len(in_idx)) < lanes).astype(np.float32)
        args = (H, in_idx, out_idx, np.asarray(neg_idx, np.int32), reset, active)
        if masks is None and self._draw_masks is not None:
            masks = self._draw_masks(np.int32(len(in_idx)))
        if masks is None:
            loss_sum, H = self._train(*args)
        else:
            loss_sum, H = self._train_masked(*args, masks)
        self.H = [h[:lanes] for h in H] if pad > 0 else list(H)
        return loss_sum

    def score(self, in_idx) -> np.ndarray:
        """Scores of all items after feeding ``in_idx`` (no dropout); advances the state."""
        scores, H = self._score(tuple(self.H), np.asarray(in_idx, np.int32), self._take_reset())
        self.H = list(H)
        return ops.convert_to_numpy(scores)

    def evaluate(self, test: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        """Rank record of ``test``: ``eval_batch_size`` sessions in parallel, each from zero state."""
        data = SessionData.from_frame(test, self.item_ids, where="test", drop_unknown=True)
        return evaluate_sessions(self._padded_rank() if self.pad else self._rank, self._zero_state, data,
                                 self.p["eval_batch_size"], reset="step", progress=progress)

    def _padded_rank(self):
        """The rank function at one shape: the shrinking tail of the evaluation padded to the
        width of its first call (padding lanes: item 0 from zero state; their results dropped)."""
        width = None

        def rank(H, in_idx, target_idx, reset_mask):
            nonlocal width
            n = len(in_idx)
            width = width or n
            pad = width - n
            if pad <= 0:
                return self._rank(H, in_idx, target_idx, reset_mask)
            fill = np.zeros(pad, np.int32)
            H = tuple(ops.concatenate([h, ops.zeros((pad, h.shape[1]), "float32")]) for h in H)
            higher, ties, H = self._rank(H, np.concatenate([in_idx, fill]), np.concatenate([target_idx, fill]),
                                         np.concatenate([reset_mask, np.zeros(pad, bool)]))
            return higher[:n], ties[:n], tuple(h[:n] for h in H)
        return rank


def evaluate_sessions(rank_fn, initial_state, data: SessionData, lanes: int, reset: str = "step",
                      progress: bool = False) -> pd.DataFrame:
    """Walk ``data`` session-parallel and collect (higher, ties) for every event but the last.

    ``rank_fn(H, in_idx, target_idx, reset_mask) -> (higher, ties, H)``;
    ``initial_state(lanes)``: the state list the walk starts from.
    ``reset``: ``"step"`` zeroes a lane's state at the step a new session takes it;
    ``"window"`` (the tutorial port's reset-every-step flaw) repeats that mask on
    every step of the window; ``"none"`` never resets (the port's early evaluation).
    """
    from tqdm.auto import tqdm

    if reset not in ("step", "window", "none"):
        raise ValueError(f"evaluate_sessions: reset must be step, window or none, not {reset!r}")
    H = tuple(initial_state(min(lanes, max(data.n_sessions, 1))))
    events, highers, tiess = [], [], []
    bar = tqdm(total=data.n_events - data.n_sessions, desc="evaluate", disable=not progress, leave=False)
    for step in session_parallel(data, lanes, min_lanes=1):
        if step.keep is not None:
            H = tuple(ops.take(h, np.asarray(step.keep, np.int32), axis=0) for h in H)
        if reset == "step" and step.reset is not None:
            mask = step.reset
        elif reset == "window":
            mask = step.window_new
        else:
            mask = np.zeros(len(step.in_idx), bool)
        higher, ties, H = rank_fn(H, step.in_idx.astype(np.int32), step.out_idx.astype(np.int32), mask)
        events.append(step.event)
        highers.append(ops.convert_to_numpy(higher))
        tiess.append(ops.convert_to_numpy(ties))
        bar.update(len(step.event))
    bar.close()
    if not events:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RANK_COLUMNS.items()})
    event = np.concatenate(events)
    session = np.searchsorted(data.offsets, event, side="right") - 1
    ranks = pd.DataFrame({
        "session_id": data.session_ids[session],
        "position": (event - data.offsets[session]).astype(np.int32),
        "target": data.item_ids[event + 1],
        "higher": np.concatenate(highers),
        "ties": np.concatenate(tiess),
    }).astype(RANK_COLUMNS)
    return ranks.sort_values(["session_id", "position"], kind="stable").reset_index(drop=True)
