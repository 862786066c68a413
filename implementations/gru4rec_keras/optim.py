"""Adagrad with classic momentum, sparse on the item matrices (SPEC.md section 4).

Per parameter row touched in the step (duplicate rows' gradients summed first):

    acc += g^2;  v = momentum * v - lr * g / sqrt(acc + eps);  w += v

Rows of an item matrix that are not in the mini-batch get no update at all,
not even from their momentum. Dense parameters (GRU weights) update every
step. Gradients of the item matrices arrive as ``tf.IndexedSlices`` (from
``tf.gather``) and are applied with scatter updates.
"""
from __future__ import annotations

import tensorflow as tf

EPS = 1e-6


class AdagradMomentum:
    """Holds the accumulator and velocity of every variable; ``apply`` runs in graph."""

    def __init__(self, variables: list[tf.Variable], learning_rate: float, momentum: float):
        self.variables = list(variables)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.acc = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"acc_{i}")
                    for i, v in enumerate(self.variables)]
        self.vel = [tf.Variable(tf.zeros_like(v), trainable=False, name=f"vel_{i}")
                    for i, v in enumerate(self.variables)]

    def apply(self, grads) -> None:
        for g, w, acc, vel in zip(grads, self.variables, self.acc, self.vel):
            if g is None:
                continue
            if isinstance(g, tf.IndexedSlices):
                self._apply_sparse(g, w, acc, vel)
            else:
                self._apply_dense(g, w, acc, vel)

    def _step(self, g, acc_new, vel_old):
        return self.momentum * vel_old - self.learning_rate * g / tf.sqrt(acc_new + EPS)

    def _apply_dense(self, g, w, acc, vel) -> None:
        acc_new = acc.assign_add(g * g)
        v = self._step(g, acc_new, vel)
        vel.assign(v)
        w.assign_add(v)

    def _apply_sparse(self, g: tf.IndexedSlices, w, acc, vel) -> None:
        rows, where = tf.unique(g.indices)
        g_rows = tf.math.unsorted_segment_sum(g.values, where, tf.shape(rows)[0])
        acc_rows = tf.gather(acc, rows) + g_rows * g_rows
        acc.scatter_update(tf.IndexedSlices(acc_rows, rows))
        v_rows = self._step(g_rows, acc_rows, tf.gather(vel, rows))
        vel.scatter_update(tf.IndexedSlices(v_rows, rows))
        # rows are unique: gather + scatter_update is scatter_add, and cheaper on CPU
        # (TensorFlow's ResourceScatterAdd kernel; measured in benchmarks/README.md)
        w.scatter_update(tf.IndexedSlices(tf.gather(w, rows) + v_rows, rows))

    def slots(self) -> dict[str, tf.Variable]:
        out = {}
        for i, (a, v) in enumerate(zip(self.acc, self.vel)):
            out[f"acc.{i}"] = a
            out[f"vel.{i}"] = v
        return out
