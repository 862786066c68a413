"""Adagrad with classic momentum, sparse on the item matrices (SPEC.md section 4).

Per parameter row touched in the step (duplicate rows' gradients summed first):

    acc += g^2;  v = momentum * v - lr * g / sqrt(acc + eps);  w += v

Rows of an item matrix that are not in the mini-batch get no update at all,
not even from their momentum. Dense parameters (GRU weights) update every
step. The optimizer is pure ``keras.ops`` math on values: :meth:`dense` and
:meth:`sparse` return the new values, which the compiled step writes back
(:mod:`.compiled`). A sparse gradient is the gradient with respect to the
gathered rows ``W[idx]`` (``idx`` may repeat): the indices are sorted, the
gradients of equal indices summed (``segment_sum``), and every position gets
its row's sum, so repeated indices carry identical new rows and writing them
in any order gives the same result (static shapes: no ``unique``, which XLA
cannot compile).
"""
from __future__ import annotations

import keras
from keras import ops

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
        order = ops.argsort(idx)
        rows = ops.take(idx, order, axis=0)
        g = ops.take(g_rows, order, axis=0)
        n = ops.shape(rows)[0]
        first = ops.concatenate([ops.ones((1,), "int32"), ops.cast(rows[1:] != rows[:-1], "int32")])
        segment = ops.cumsum(first) - 1
        g = ops.take(ops.segment_sum(g, segment, num_segments=n), segment, axis=0)
        acc_rows = ops.take(acc, rows, axis=0) + g * g
        v_rows = self._step(g, acc_rows, ops.take(vel, rows, axis=0))
        return rows, ops.take(w, rows, axis=0) + v_rows, acc_rows, v_rows

    def slots(self) -> dict:
        out = {}
        for i, (a, v) in enumerate(zip(self.acc, self.vel)):
            out[f"acc.{i}"] = a
            out[f"vel.{i}"] = v
        return out
