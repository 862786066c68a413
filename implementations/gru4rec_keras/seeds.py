"""Seeds trained together: the S seeds of one run stepped as one model (issue 19).

The seeds of a run are independent models over the same data. Sessions are
served in an order that does not depend on the seed (first-event time or
SessionId, SPEC.md section 4), so every seed sees the same mini-batches,
resets and shrinking end of an epoch; what differs per seed is its
initialisation, its extra negatives (its own :class:`.sampling.SampleStore`)
and its dropout masks (its own generator state).

On JAX on a GPU (and on JAX's CPU with ``batched=True``), :class:`SeedsTogether`
runs one compiled step for all of them: the
model's pure train step (``GRU4Rec._pure_train``) under ``jax.vmap`` over a
leading seed axis of every value it reads (weights, optimizer slots, the
dropout generator's state), of the hidden state and of the extra negatives;
the batch's items, resets and padding lanes are shared (``in_axes=None``).
The stacked values are the source of truth while the seeds train; the
optimizer's row writes are ``.at[rows].set`` per seed, the stacked values
donated (:func:`.compiled.batched_step_function`). :meth:`SeedsTogether.sync`
copies each seed's slice back into its own model's variables (once per epoch
in :func:`.train.train_together`), so each model's ``evaluate``,
``save_weights`` and checkpoint work unchanged.

On TensorFlow and PyTorch the seeds' steps run one after another in the same
process and loop (each model's own compiled step; the gain is about 1).
``tensorflow.vectorized_map`` and ``torch.func.vmap`` were not tried: the step
takes its gradient with ``GradientTape`` / ``torch.autograd.grad`` and writes
item rows into variables in place, which would first have to become
functional. So do the seeds on JAX's CPU unless
``batched=True``: there the vmapped step of 5 seeds was measured at 0.63-1.24x
the events per CPU-second of 5 single steps (README.md).

Exactness (tests/test_gru4rec_keras_seeds.py, every loss and embedding mode,
dropout on): the same weights as each seed trained alone to float32
tolerance (XLA may round a batched product differently from a single one;
on TensorFlow and PyTorch they are bit for bit the same computation) and
identical rank records.
"""
from __future__ import annotations

import os

import numpy as np
from keras import ops

from . import compiled
from .model import GRU4Rec


def seeds_together_enabled() -> bool:
    """False when ``GRU4REC_KERAS_SEEDS_TOGETHER`` is 0/false/no/off (train the seeds one run after the other)."""
    return os.environ.get("GRU4REC_KERAS_SEEDS_TOGETHER", "1").lower() not in ("0", "false", "no", "off")


class SeedsTogether:
    """``models`` (GRU4Rec of the same params, items and support, any seeds) stepped together.

    The stepping API of GRU4Rec as train.py uses it: ``reset_state``,
    ``reset_lanes``, ``keep_lanes``, ``train_step_tensor(in_idx, out_idx,
    neg_idx)`` with ``neg_idx`` of shape ``(S, n_sample)`` (each seed's own
    negatives), returning the ``(S,)`` loss sums; ``sync()`` writes the stacked
    values back into the models. ``batched``: one vmapped step (JAX only; default: on a GPU,
    :func:`.compiled.batch_seeds_by_default`) or the seeds one after another.
    """

    def __init__(self, models: list[GRU4Rec], batched: bool | None = None):
        if not models:
            raise ValueError("SeedsTogether: no models")
        m0 = models[0]
        for m in models[1:]:
            if m.p != m0.p or m.n_items != m0.n_items:
                raise ValueError("SeedsTogether: the models differ in params or item count "
                                 f"(seed {m0.seed}: {m0.n_items} items; seed {m.seed}: {m.n_items})")
            if not np.array_equal(ops.convert_to_numpy(m.log_support), ops.convert_to_numpy(m0.log_support)):
                raise ValueError(f"SeedsTogether: seeds {m0.seed} and {m.seed} have different item support")
        if any(m.dropout_mask_fn is not None for m in models):
            raise ValueError("SeedsTogether: dropout_mask_fn (the test hook) is for models trained alone")
        self.models = list(models)
        self.n_seeds = len(models)
        self.p = m0.p
        self.pad = m0.pad
        self.units = m0.units
        self.batched = compiled.batch_seeds_by_default() if batched is None else bool(batched)
        if self.batched and not compiled.batches_seeds():
            raise ValueError(f"SeedsTogether: batched=True needs JAX (Keras runs on {compiled.backend()!r})")
        self._pending_reset: np.ndarray | None = None
        if self.batched:
            # args after the values: H, in_idx, out_idx, neg_idx, reset_mask, active
            self._step = compiled.batched_step_function(m0._pure_train, (0, None, None, 0, None, None),
                                                        cache_key=m0._cache_key("train_together"))
            self.values = [ops.stack([m.state_vars[i].value for m in models])
                           for i in range(len(m0.state_vars))]
        self.reset_state()

    # ----- hidden state ----------------------------------------------------------------------
    def _zero_state(self, lanes: int) -> list:
        return [ops.zeros((self.n_seeds, lanes, H), "float32") for H in self.units]

    def reset_state(self, lanes: int | None = None) -> None:
        if not self.batched:
            for m in self.models:
                m.reset_state(lanes)
            return
        self.H = self._zero_state(self.p["batch_size"] if lanes is None else lanes)
        self._pending_reset = None

    def reset_lanes(self, mask) -> None:
        """Zero the lanes where ``mask`` is true, in every seed (before the next step)."""
        if not self.batched:
            for m in self.models:
                m.reset_lanes(mask)
            return
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.H[0].shape[1],):
            raise ValueError(f"reset mask of shape {mask.shape} for {self.H[0].shape[1]} lanes")
        self._pending_reset = mask if self._pending_reset is None else (self._pending_reset | mask)

    def keep_lanes(self, idx) -> None:
        """Keep only these lanes (the batch shrinks), in every seed."""
        if not self.batched:
            for m in self.models:
                m.keep_lanes(idx)
            return
        idx = np.asarray(idx, dtype=np.int32)
        self.H = [ops.take(h, idx, axis=1) for h in self.H]
        if self._pending_reset is not None:
            self._pending_reset = self._pending_reset[idx]

    def _take_reset(self) -> np.ndarray:
        mask = self._pending_reset
        self._pending_reset = None
        return np.zeros(self.H[0].shape[1], dtype=bool) if mask is None else mask

    # ----- training --------------------------------------------------------------------------
    def train_step_tensor(self, in_idx, out_idx, neg_idx=None):
        """One mini-batch of every seed (``neg_idx``: ``(S, n_sample)``, row s the negatives of
        seed s; None: no extra negatives); returns the ``(S,)`` sums of the per-row losses."""
        S = self.n_seeds
        if neg_idx is None:
            neg_idx = np.zeros((S, 0), np.int32)
        neg_idx = np.asarray(neg_idx, np.int32)
        if neg_idx.ndim != 2 or neg_idx.shape[0] != S:
            raise ValueError(f"SeedsTogether: neg_idx of shape {neg_idx.shape}, expected ({S}, n_sample)")
        if not self.batched:
            return ops.stack([m.train_step_tensor(in_idx, out_idx, neg_idx[s]) for s, m in enumerate(self.models)])
        in_idx, out_idx = np.asarray(in_idx, np.int32), np.asarray(out_idx, np.int32)
        reset, H, lanes = self._take_reset(), tuple(self.H), len(in_idx)
        pad = self.p["batch_size"] - lanes if self.pad else 0
        if pad > 0:  # as GRU4Rec.train_step_tensor: padding lanes repeat lane 0's items, from zero state
            in_idx = np.concatenate([in_idx, np.full(pad, in_idx[0], np.int32)])
            out_idx = np.concatenate([out_idx, np.full(pad, out_idx[0], np.int32)])
            reset = np.concatenate([reset, np.zeros(pad, bool)])
            H = tuple(ops.concatenate([h, ops.zeros((S, pad, h.shape[2]), "float32")], axis=1) for h in H)
        active = (np.arange(len(in_idx)) < lanes).astype(np.float32)
        (loss_sum, H), self.values = self._step(self.values, H, in_idx, out_idx, neg_idx, reset, active)
        self.H = [h[:, :lanes] for h in H] if pad > 0 else list(H)
        return loss_sum

    def train_step(self, in_idx, out_idx, neg_idx=None) -> list[float]:
        """One mini-batch of every seed; each seed's loss as ``GRU4Rec.train_step`` returns it."""
        sums = ops.convert_to_numpy(self.train_step_tensor(in_idx, out_idx, neg_idx))
        return [float(x) / self.p["batch_size"] for x in sums]

    def sync(self) -> None:
        """Write each seed's slice of the stacked values into its own model's variables."""
        if not self.batched:
            return
        for s, m in enumerate(self.models):
            for var, value in zip(m.state_vars, self.values):
                var.assign(value[s])
