"""Adagrad with classic momentum, sparse on the item matrices (SPEC.md section 4).

Per parameter row touched in the step (duplicate rows' gradients summed first):

    acc += g^2;  v = momentum * v - lr * g / sqrt(acc + eps);  w += v

Rows of an item matrix that are not in the mini-batch get no update at all,
not even from their momentum. Dense parameters (GRU weights) update every
step. The optimizer is pure ``keras.ops`` math on values: :meth:`dense` and
:meth:`sparse` return the new values, which the compiled step writes back
(:mod:`.compiled`). A sparse gradient is the gradient with respect to the
gathered rows ``W[idx]`` (``idx`` may repeat): the gradients of equal indices
are summed (:func:`.compiled.sum_repeated_rows`: per distinct row on
TensorFlow's graph, per position elsewhere, every position getting its row's
sum, so that repeated indices carry identical new rows and writing them in any
order gives the same result).
"""
from __future__ import annotations

import keras
from keras import ops

from .compiled import sum_repeated_rows, take_rows

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

    def sparse(self, w, acc, vel, idx, g_rows, static: bool = True):
        """(rows, new w rows, new acc rows, new vel rows) for the rows ``idx``, whose
        gradients (one per position, repeats allowed) are ``g_rows``; ``static``: shapes stay
        fixed (:func:`.compiled.sum_repeated_rows`)."""
        rows, g = sum_repeated_rows(idx, g_rows, w.shape[0], static)
        acc_rows = take_rows(acc, rows) + g * g
        v_rows = self._step(g, acc_rows, take_rows(vel, rows))
        return rows, take_rows(w, rows) + v_rows, acc_rows, v_rows

    def slots(self) -> dict:
        out = {}
        for i, (a, v) in enumerate(zip(self.acc, self.vel)):
            out[f"acc.{i}"] = a
            out[f"vel.{i}"] = v
        return out
