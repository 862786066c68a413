"""Keras 3 layers of GRU4Rec, backend-agnostic (``keras.ops`` only).

Each layer holds its weights as Keras variables; its math is also a pure
function of the weights' values (``pure``/``gru_cell``), which the model's
compiled steps call with values passed in (the stateless form every backend
can compile and differentiate).

* :class:`ItemMatrix`: an (n_items, d) matrix used by row lookup -- the input
  embedding ``E``, and the output item matrix ``Wy`` with its bias ``By``.
  The model gathers the rows a step uses and differentiates with respect to
  those rows only, so the optimizer touches only them.
* :class:`OneHotGRU`: the first layer when the input is one-hot, in the
  original GRU form. A one-hot vector times the input weights is a row of
  them, so the one-hot matrix is never built: ``Wx[x]`` is gathered.
* The library-form layers are ``keras.layers.GRUCell(reset_after=True)``
  (created in :mod:`.model`; Keras packs their gates (update, reset, new));
  :func:`gru_cell` is their math on the cell's weights.
* :class:`Dropout`: inverted dropout drawn from a ``keras.random.SeedGenerator``
  so that training is reproducible on every backend.
"""
from __future__ import annotations

import keras
from keras import ops


class ItemMatrix(keras.layers.Layer):
    """(n_items, dim) weights (and optionally an (n_items,) bias) read by item index."""

    def __init__(self, n_items: int, dim: int, bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.dim = n_items, dim
        self.W = self.add_weight(shape=(n_items, dim), initializer="zeros", name="W")
        self.b = self.add_weight(shape=(n_items,), initializer="zeros", name="b") if bias else None
        self.built = True

    def rows(self, idx):
        """W[idx]."""
        return ops.take(self.W.value, idx, axis=0)

    @staticmethod
    def scores(h, W, b):
        """h . W^T + b: W, b the rows (or all) of the item matrix and its bias."""
        return ops.einsum("bd,nd->bn", h, W) + b[None, :]  # no transposed copy of W (TensorFlow)

    def score(self, h, idx=None):
        """h . W[idx]^T + b[idx]; all items when ``idx`` is None."""
        if idx is None:
            return self.scores(h, self.W.value, self.b.value)
        return self.scores(h, ops.take(self.W.value, idx, axis=0), ops.take(self.b.value, idx, axis=0))

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

    @staticmethod
    def pure(units: int, Wx_rows, Wrz, Wh, b, h):
        """The layer on the gathered rows ``Wx[x]`` and the other weights' values."""
        v = Wx_rows + b
        v_n, v_rz = v[:, :units], v[:, units:]
        rz = ops.sigmoid(v_rz + ops.matmul(h, Wrz))
        r, z = rz[:, :units], rz[:, units:]
        n = ops.tanh(ops.matmul(r * h, Wh) + v_n)
        return (1.0 - z) * h + z * n

    def call(self, idx, h):
        return self.pure(self.units, ops.take(self.Wx.value, idx, axis=0), self.Wrz.value, self.Wh.value,
                         self.b.value, h)


def gru_cell(units: int, kernel, recurrent_kernel, bias, x, h):
    """``keras.layers.GRUCell(reset_after=True)`` on its weights' values: gate blocks
    (update z, reset r, new n) along the columns, ``bias`` = (input bias, recurrent bias);
    h' = z * h + (1 - z) * n, n = tanh(x W_n + b_n + r * (h U_n + c_n))."""
    x_z, x_r, x_n = ops.split(ops.matmul(x, kernel) + bias[0], 3, axis=-1)
    h_z, h_r, h_n = ops.split(ops.matmul(h, recurrent_kernel) + bias[1], 3, axis=-1)
    z = ops.sigmoid(x_z + h_z)
    r = ops.sigmoid(x_r + h_r)
    n = ops.tanh(x_n + r * h_n)
    return z * h + (1.0 - z) * n


class Dropout(keras.layers.Layer):
    """Inverted dropout drawn from ``generator`` (a ``keras.random.SeedGenerator``;
    identity when p = 0). The mask keeps x where a uniform draw is >= p and scales by 1/(1-p).

    In a stateless (compiled JAX) step, call it inside ``keras.StatelessScope`` with the
    generator's ``state`` mapped, or draw :meth:`mask` there and multiply.
    """

    def __init__(self, p: float, generator: keras.random.SeedGenerator, **kwargs):
        super().__init__(**kwargs)
        self.p = float(p)
        self.generator = generator

    def mask(self, shape):
        """A scaled mask (0 or 1/(1-p)) of ``shape``; advances the generator."""
        return self.scale(keras.random.uniform(shape, seed=self.generator))

    def scale(self, u):
        """The scaled mask of uniform [0, 1) draws ``u``: 1/(1-p) where ``u >= p``, else 0."""
        return ops.where(u >= self.p, 1.0 / (1.0 - self.p), 0.0)

    def call(self, x, training=False):
        if not training or self.p <= 0:
            return x
        return x * self.mask(ops.shape(x))


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

    @staticmethod
    def pure(units: int, kernel_rows, recurrent_kernel, bias, h):
        """The layer on the gathered rows ``kernel[x]`` and the other weights' values."""
        H = units
        x = kernel_rows + bias[0]
        u = ops.matmul(h, recurrent_kernel) + bias[1]
        z = ops.sigmoid(x[:, :H] + u[:, :H])
        r = ops.sigmoid(x[:, H:2 * H] + u[:, H:2 * H])
        n = ops.tanh(x[:, 2 * H:] + r * u[:, 2 * H:])
        return z * h + (1.0 - z) * n

    def call(self, idx, h):
        return self.pure(self.units, ops.take(self.kernel.value, idx, axis=0), self.recurrent_kernel.value,
                         self.bias.value, h)
