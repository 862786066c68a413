"""Adagrad with classic momentum, sparse on the item matrices (SPEC.md section 4).

Per parameter row touched in the step (duplicate rows' gradients summed first):

    acc += g^2;  v = momentum * v - lr * g / sqrt(acc + eps);  w += v

Rows of an item matrix that are not in the mini-batch get no update at all,
not even from their momentum. Dense parameters (GRU weights) update every
step. The optimizer is pure ``keras.ops`` math on values: :meth:`dense` and
:meth:`sparse` return the new values, which the compiled step writes back
(:mod:`.compiled`). A sparse gradient is the gradient with respect to the
gathered rows ``W[idx]`` (``idx`` may repeat): the gradients of equal indices
are summed (``segment_sum`` over each position's representative, the position
of one occurrence of its row), and every position gets its row's sum, so
repeated indices carry identical new rows and writing them in any order gives
the same result (static shapes: no ``unique``, which XLA cannot compile; no
sort, measured slower).
"""
from __future__ import annotations

import keras
from keras import ops

from .compiled import take_rows

EPS = 1e-6


class AdagradMomentum:
    """Holds the accumulator and velocity (Keras variables) of every variable."""

    def __init__(self, variables: list, learning_rate: float, momentum: float):
        self.variables = list(variables)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.acc = [keras.Variable(ops.zeros(v.shape), trainable=False, name=f"acc_{i}")
                    for i, v in enumerate(self.variables)]
        self.vel = [keras.Variable(ops.zeros(v.shape), trainable=False, name=f"vel_{i}")
                    for i, v in enumerate(self.variables)]

    def _step(self, g, acc_new, vel_old):
        return self.momentum * vel_old - self.learning_rate * g / ops.sqrt(acc_new + EPS)

    def dense(self, w, acc, vel, g):
        """New (w, acc, vel) of a dense variable."""
        acc_new = acc + g * g
        v = self._step(g, acc_new, vel)
        return w + v, acc_new, v

    def sparse(self, w, acc, vel, idx, g_rows):
        """(indices, new w rows, new acc rows, new vel rows) for the rows ``idx``, whose
        gradients (one per position, repeats allowed) are ``g_rows``."""
        n = ops.shape(idx)[0]
        # each position's representative: the position of one occurrence of its row (a
        # scatter of the positions into an item-sized buffer; which repeat wins does not matter)
        buffer = ops.scatter_update(ops.zeros((w.shape[0],), "int32"), idx[:, None], ops.arange(n, dtype="int32"))
        rep = ops.take(buffer, idx, axis=0)
        g = ops.take(ops.segment_sum(g_rows, rep, num_segments=n), rep, axis=0)
        acc_rows = take_rows(acc, idx) + g * g
        v_rows = self._step(g, acc_rows, take_rows(vel, idx))
        return idx, take_rows(w, idx) + v_rows, acc_rows, v_rows

    def slots(self) -> dict:
        out = {}
        for i, (a, v) in enumerate(zip(self.acc, self.vel)):
            out[f"acc.{i}"] = a
            out[f"vel.{i}"] = v
        return out
