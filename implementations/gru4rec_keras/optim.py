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
    """Holds the accumulator and velocity of every variable; ``apply`` runs in graph.

    ``sparse``: indices of the variables whose gradients arrive as
    ``tf.IndexedSlices`` (item matrices). Their accumulator and velocity live
    in one slot variable of shape (rows, 2, ...) so that a step gathers and
    scatters each touched row once for both; dense variables keep two slots.

    ``bias_column``: sparse 2-D variables whose last column is a separate
    parameter (the output bias By packed next to Wy) touched only by the first
    ``prefix`` gradient indices (``apply(grads, {i: prefix})``: the targets and
    samples, gathered before the inputs). Rows that only later indices touch
    (rows used only as an input embedding) leave that column alone -- no
    momentum step either -- exactly as if By were its own matrix.
    """

    def __init__(self, variables: list[tf.Variable], learning_rate: float, momentum: float,
                 sparse: tuple[int, ...] = (), bias_column: tuple[int, ...] = ()):
        self.variables = list(variables)
        self.bias_column = frozenset(bias_column)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.sparse = frozenset(sparse)
        self.slot = {}  # sparse variable index -> (rows, 2, ...) accumulator and velocity
        self.acc, self.vel = {}, {}  # dense variable index -> slot
        for i, v in enumerate(self.variables):
            if i in self.sparse:
                shape = [v.shape[0], 2, *v.shape[1:]]
                self.slot[i] = tf.Variable(tf.zeros(shape, v.dtype), trainable=False, name=f"slot_{i}")
            else:
                self.acc[i] = tf.Variable(tf.zeros_like(v), trainable=False, name=f"acc_{i}")
                self.vel[i] = tf.Variable(tf.zeros_like(v), trainable=False, name=f"vel_{i}")

    def apply(self, grads, prefix: dict | None = None) -> None:
        prefix = prefix or {}
        for i, (g, w) in enumerate(zip(grads, self.variables)):
            if g is None:
                continue
            if isinstance(g, tf.IndexedSlices):
                if i in self.sparse:
                    self._apply_sparse(g, w, self.slot[i], prefix.get(i) if i in self.bias_column else None)
                else:
                    self._apply_sparse_split(g, w, self.acc[i], self.vel[i])
            elif i in self.sparse:
                self._apply_sparse(_dense_to_slices(g), w, self.slot[i])
            else:
                self._apply_dense(g, w, self.acc[i], self.vel[i])

    def _step(self, g, acc_new, vel_old):
        return self.momentum * vel_old - self.learning_rate * g / tf.sqrt(acc_new + EPS)

    def _apply_dense(self, g, w, acc, vel) -> None:
        acc_new = acc.assign_add(g * g)
        v = self._step(g, acc_new, vel)
        vel.assign(v)
        w.assign_add(v)

    def _apply_sparse(self, g: tf.IndexedSlices, w, slot, prefix=None) -> None:
        rows, where = tf.unique(g.indices)
        n_rows = tf.shape(rows)[0]
        g_rows = tf.math.unsorted_segment_sum(g.values, where, n_rows)
        s = tf.gather(slot, rows)
        acc_rows = s[:, 0] + g_rows * g_rows
        v_rows = self._step(g_rows, acc_rows, s[:, 1])
        if prefix is not None:
            # the last column moves only in rows the first ``prefix`` indices touch (their
            # gradient there is 0 otherwise, so the accumulator is unchanged anyway)
            first = tf.math.unsorted_segment_min(tf.range(tf.shape(where)[0]), where, n_rows)
            keep_last = (first < prefix)[:, None]
            col = tf.range(tf.shape(v_rows)[1])[None, :] < tf.shape(v_rows)[1] - 1
            v_rows = tf.where(col | keep_last, v_rows, s[:, 1])
            slot.scatter_update(tf.IndexedSlices(tf.stack([acc_rows, v_rows], axis=1), rows))
            delta = tf.where(col | keep_last, v_rows, tf.zeros_like(v_rows))
            w.scatter_update(tf.IndexedSlices(tf.gather(w, rows) + delta, rows))
            return
        slot.scatter_update(tf.IndexedSlices(tf.stack([acc_rows, v_rows], axis=1), rows))
        # rows are unique: gather + scatter_update is scatter_add, several times faster
        # on CPU (TensorFlow's ResourceScatterAdd kernel is slow)
        w.scatter_update(tf.IndexedSlices(tf.gather(w, rows) + v_rows, rows))

    def _apply_sparse_split(self, g: tf.IndexedSlices, w, acc, vel) -> None:
        """The same sparse update with separate accumulator and velocity variables."""
        rows, where = tf.unique(g.indices)
        g_rows = tf.math.unsorted_segment_sum(g.values, where, tf.shape(rows)[0])
        acc_rows = tf.gather(acc, rows) + g_rows * g_rows
        v_rows = self._step(g_rows, acc_rows, tf.gather(vel, rows))
        acc.scatter_update(tf.IndexedSlices(acc_rows, rows))
        vel.scatter_update(tf.IndexedSlices(v_rows, rows))
        w.scatter_update(tf.IndexedSlices(tf.gather(w, rows) + v_rows, rows))

    def slots(self) -> dict[str, tf.Variable]:
        """Every optimizer state variable by a stable name (for checkpoints)."""
        out = {}
        for i in range(len(self.variables)):
            if i in self.slot:
                out[f"slot.{i}"] = self.slot[i]
            else:
                out[f"acc.{i}"], out[f"vel.{i}"] = self.acc[i], self.vel[i]
        return out

    def state(self, i: int) -> tuple:
        """(accumulator, velocity) of variable ``i`` as numpy arrays."""
        if i in self.slot:
            s = self.slot[i].numpy()
            return s[:, 0], s[:, 1]
        return self.acc[i].numpy(), self.vel[i].numpy()


def _dense_to_slices(g) -> tf.IndexedSlices:
    rows = tf.range(tf.shape(g)[0])
    return tf.IndexedSlices(g, rows)
