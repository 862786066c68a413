"""A fused CPU kernel for the sparse Adagrad-momentum row update (numba).

On the CPU, :meth:`optim.SparseAdagradMomentum.step_entries` done with
PyTorch's index operations makes about a dozen passes over the mini-batch's
rows (gather the accumulator and the momentum, square, add, sqrt, divide,
scatter three tables back). This kernel does it in one pass per marked row:
read the row's gradient, accumulator, momentum and weights once, write them
once. Same arithmetic, element by element (``acc += g^2``, ``v = momentum *
v - lr * g / sqrt(acc + eps)``, ``w += v``), serial and so deterministic; it
agrees with the PyTorch path to float32 rounding (tests/test_gru4rec_torch.py).

``dropout_masks`` draws the counter-based dropout masks of model.py in one
pass (the same integer hash, so the same bits as the tensor operations a
GPU runs; tested).

Only used for float32 tensors on the CPU; on a GPU the PyTorch path stays
(it makes no host synchronisation). ``AVAILABLE`` is False when numba cannot
be imported, and the PyTorch path is used everywhere.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is in requirements.txt
    numba = None

AVAILABLE = numba is not None


def _rows_update(W, acc, vel, idx, mask, grad, lr, momentum, eps):  # pragma: no cover - compiled
    """Update rows ``idx[e]`` of ``W`` (and of ``acc``, ``vel``) for every
    entry ``e`` with ``mask[e]``; the marked entries name distinct rows.
    ``momentum == 0`` leaves ``vel`` untouched (it may be a dummy). In float32
    throughout, as PyTorch's index operations compute it: the float64
    intermediates of a Python-float ``eps``/``lr`` kept the loop from
    vectorising (160 against 280 us for 1,500 rows of 100 on this machine)."""
    n, d = grad.shape
    lr32, mom32, eps32 = np.float32(lr), np.float32(momentum), np.float32(eps)
    for e in range(n):
        if not mask[e]:
            continue
        r = idx[e]
        if mom32 > np.float32(0.0):
            for j in range(d):
                g = grad[e, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                v = vel[r, j] * mom32 - lr32 * (g / np.sqrt(a + eps32))
                vel[r, j] = v
                W[r, j] += v
        else:
            for j in range(d):
                g = grad[e, j]
                a = acc[r, j] + g * g
                acc[r, j] = a
                W[r, j] -= lr32 * (g / np.sqrt(a + eps32))


def _dense_update(g, acc, vel, lr, momentum, eps):  # pragma: no cover - compiled
    """The dense Adagrad-momentum update of flat float32 buffers, element by
    element: ``acc += g^2``; with ``momentum > 0`` ``vel = momentum * vel - lr
    * g / sqrt(acc + eps)`` (the caller adds ``vel`` to the weights), else
    ``g`` becomes the step ``g / sqrt(acc + eps)`` (the caller subtracts ``lr``
    times it). One pass instead of PyTorch's six over the buffer."""
    lr32, mom32, eps32 = np.float32(lr), np.float32(momentum), np.float32(eps)
    if mom32 > np.float32(0.0):
        for i in range(g.shape[0]):
            x = g[i]
            a = acc[i] + x * x
            acc[i] = a
            vel[i] = vel[i] * mom32 - lr32 * (x / np.sqrt(a + eps32))
    else:
        for i in range(g.shape[0]):
            x = g[i]
            a = acc[i] + x * x
            acc[i] = a
            g[i] = x / np.sqrt(a + eps32)


def _compile(cache: bool):
    # error_model="numpy": no Python ZeroDivisionError check per element, so
    # the inner loop vectorises; no fastmath: IEEE arithmetic as in PyTorch
    return numba.njit(_rows_update, nogil=True, cache=cache, error_model="numpy", boundscheck=False)


def _dropout_masks(out, keys, first, threshold, scale):  # pragma: no cover - compiled
    """``out[s, i] = scale`` if the top 24 bits of mix32((first + i) ^ keys[s]) are
    below ``threshold``, else 0: model.dropout_mask (the same integer hash,
    model.mix32) in one pass instead of some twenty tensor operations."""
    S, n = out.shape
    m32 = np.int64(0xFFFFFFFF)
    for s in range(S):
        k = keys[s]
        for i in range(n):
            x = (first + i) ^ k
            x ^= x >> 16
            x = (x * np.int64(0x7FEB352D)) & m32
            x ^= x >> 15
            x = (x * np.int64(0x2C1B3C6D)) & m32
            x ^= x >> 13
            x = (x * np.int64(0x297A2D39)) & m32
            x ^= x >> 16
            out[s, i] = scale if (x >> 8) < threshold else np.float32(0.0)


def _compile_masks(cache: bool):
    return numba.njit(_dropout_masks, nogil=True, cache=cache, error_model="numpy", boundscheck=False)


def _compile_dense(cache: bool):
    return numba.njit(_dense_update, nogil=True, cache=cache, error_model="numpy", boundscheck=False)


if AVAILABLE:
    try:  # the machine code is cached next to this file (or in numba's user cache)
        rows_update = _compile(cache=True)
        dropout_masks = _compile_masks(cache=True)
        dense_update = _compile_dense(cache=True)
    except RuntimeError:  # pragma: no cover - nowhere writable: compile once per process
        rows_update = _compile(cache=False)
        dropout_masks = _compile_masks(cache=False)
        dense_update = _compile_dense(cache=False)
else:  # pragma: no cover
    rows_update = dropout_masks = dense_update = None


_WARM: set = set()


def warm_up(*names: str) -> None:
    """Load the machine code of the kernels ``names`` ("rows", "dense", "masks") now, once per
    process, by calling each on empty arrays of the argument types the model passes (the one
    signature each is compiled for). Numba loads a cached kernel, or compiles it, at its first
    call: about 1 CPU-second for the three in one process on this project's machine (a
    ``cProfile`` of one epoch, 3,000 items), which the first training step would pay; the
    optimizer calls this when it is built on the CPU, so that an epoch's time is its steps'."""
    if not AVAILABLE:
        return
    f32 = np.float32
    for name in names:
        if name in _WARM:
            continue
        if name == "rows":
            t = np.zeros((1, 1), f32)
            rows_update(t, t.copy(), t.copy(), np.zeros(0, np.int64), np.zeros(0, np.bool_),
                        np.zeros((0, 1), f32), 0.1, 0.0, 1e-6)
        elif name == "dense":
            t = np.zeros(0, f32)
            dense_update(t, t.copy(), t.copy(), 0.1, 0.0, 1e-6)
        elif name == "masks":
            dropout_masks(np.zeros((0, 0), f32), np.zeros(0, np.int64), 0, 0, f32(1.0))
        else:
            raise ValueError(f"unknown kernel {name!r}; use rows, dense or masks")
        _WARM.add(name)

