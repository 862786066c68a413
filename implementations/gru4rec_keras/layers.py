"""Keras 3 layers of GRU4Rec (TensorFlow backend).

* :class:`ItemMatrix`: an (n_items, d) matrix used by row lookup -- the input
  embedding ``E``, and the output item matrix ``Wy`` with its bias ``By``.
  Lookups go through ``tf.gather`` on the variable so that gradients are
  ``tf.IndexedSlices`` and the optimizer can touch only the rows used.
* :class:`OneHotGRU`: the first layer when the input is one-hot, in the
  original GRU form. A one-hot vector times the input weights is a row of
  them, so the one-hot matrix is never built: ``Wx[x]`` is gathered.
* The library-form layers are ``keras.layers.GRUCell(reset_after=True)``
  (created in :mod:`.model`); Keras packs their gates (update, reset, new).
* :class:`Dropout`: inverted dropout drawn from the model's seeded
  ``tf.random.Generator`` so that training is reproducible.
"""
from __future__ import annotations

import keras
import tensorflow as tf


class ItemMatrix(keras.layers.Layer):
    """(n_items, dim) weights (and optionally an (n_items,) bias) read by item index."""

    def __init__(self, n_items: int, dim: int, bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.dim = n_items, dim
        self.W = self.add_weight(shape=(n_items, dim), initializer="zeros", name="W")
        self.b = self.add_weight(shape=(n_items,), initializer="zeros", name="b") if bias else None
        self.built = True

    def rows(self, idx):
        """W[idx] (gradient: IndexedSlices over idx)."""
        return tf.gather(self.W.value, idx)

    def score(self, h, idx=None):
        """h . W[idx]^T + b[idx]; all items when ``idx`` is None."""
        if idx is None:
            return tf.matmul(h, self.W.value, transpose_b=True) + self.b.value[None, :]
        return tf.matmul(h, tf.gather(self.W.value, idx), transpose_b=True) + tf.gather(self.b.value, idx)[None, :]

    def call(self, idx):
        return self.rows(idx)


class OneHotGRU(keras.layers.Layer):
    """GRU on one-hot item input, original form (reset before the recurrent product).

    With v = Wx[x] + b split into (v_n, v_r, v_z):
    [r, z] = sigmoid([v_r, v_z] + h Wrz); n = tanh((r * h) Wh + v_n);
    h' = (1 - z) * h + z * n.
    """

    def __init__(self, n_items: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.Wx = self.add_weight(shape=(n_items, 3 * units), initializer="zeros", name="Wx")
        self.Wrz = self.add_weight(shape=(units, 2 * units), initializer="zeros", name="Wrz")
        self.Wh = self.add_weight(shape=(units, units), initializer="zeros", name="Wh")
        self.b = self.add_weight(shape=(3 * units,), initializer="zeros", name="b")
        self.built = True

    def call(self, idx, h):
        v = tf.gather(self.Wx.value, idx) + self.b.value
        v_n, v_rz = v[:, : self.units], v[:, self.units:]
        rz = tf.sigmoid(v_rz + tf.matmul(h, self.Wrz.value))
        r, z = rz[:, : self.units], rz[:, self.units:]
        n = tf.tanh(tf.matmul(r * h, self.Wh.value) + v_n)
        return (1.0 - z) * h + z * n


class Dropout(keras.layers.Layer):
    """Inverted dropout with a given ``tf.random.Generator`` (identity when p = 0)."""

    def __init__(self, p: float, generator: tf.random.Generator, **kwargs):
        super().__init__(**kwargs)
        self.p = float(p)
        self.generator = generator

    def call(self, x, training=False):
        if not training or self.p <= 0:
            return x
        keep = self.generator.uniform(tf.shape(x)) >= self.p
        return tf.where(keep, x / (1.0 - self.p), tf.zeros_like(x))


class OneHotLibraryGRU(keras.layers.Layer):
    """Keras' own GRU (``reset_after=True``, the cuDNN form) on one-hot item input.

    The tutorial's port fed ``to_categorical`` vectors to a ``CuDNNGRU``; a
    one-hot row times ``kernel`` is a row of ``kernel``, so the row is gathered.
    Weights in Keras' layout: ``kernel`` (n_items, 3H) and
    ``recurrent_kernel`` (H, 3H) with gate blocks (update z, reset r, new n),
    ``bias`` (2, 3H) = (input bias, recurrent bias); Keras' default initializers.
    h' = z * h + (1 - z) * n, n = tanh(x W_n + b_n + r * (h U_n + c_n)).
    """

    def __init__(self, n_items: int, units: int, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel = self.add_weight(shape=(n_items, 3 * units), name="kernel",
                                      initializer=keras.initializers.GlorotUniform(seed=seed))
        self.recurrent_kernel = self.add_weight(shape=(units, 3 * units), name="recurrent_kernel",
                                                initializer=keras.initializers.Orthogonal(seed=seed + 1))
        self.bias = self.add_weight(shape=(2, 3 * units), initializer="zeros", name="bias")
        self.built = True

    def call(self, idx, h):
        H = self.units
        x = tf.gather(self.kernel.value, idx) + self.bias.value[0]
        u = tf.matmul(h, self.recurrent_kernel.value) + self.bias.value[1]
        z = tf.sigmoid(x[:, :H] + u[:, :H])
        r = tf.sigmoid(x[:, H:2 * H] + u[:, H:2 * H])
        n = tf.tanh(x[:, 2 * H:] + r * u[:, 2 * H:])
        return z * h + (1.0 - z) * n
