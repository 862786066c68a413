"""The five GRU4Rec losses, exactly as the authors' code computes them.

``R`` is the B x (B + n_sample) score matrix after the final activation: row
i scores lane i's target (column i, the diagonal), the other lanes' targets
and the shared extra samples. Every function returns the per-row loss; the
model sums it over the lanes and divides by the NOMINAL batch size
(SPEC.md "Loss formulas exactly as coded"). Written with ``keras.ops``: the same
code runs on every Keras backend.
"""
from __future__ import annotations

from keras import ops

EPS = 1e-24
LOSSES = ("cross-entropy", "top1", "bpr", "top1-max", "bpr-max")


def _diagonal(R):
    """Score of each row's target, as a column (B, 1)."""
    b = ops.shape(R)[0]
    return ops.reshape(ops.diagonal(R[:, :b]), (-1, 1))


def _target_mask(R, cols=None):
    """1 everywhere but on the diagonal (B, B + n_sample); 0 too in the columns ``cols`` is 0 for."""
    shape = ops.shape(R)
    mask = ops.cast(ops.arange(shape[0])[:, None] != ops.arange(shape[1])[None, :], R.dtype)
    return mask if cols is None else mask * cols[None, :]


def softmax_negatives(R, cols=None):
    """Softmax over the negatives only: target column zeroed and given weight 0."""
    mask = _target_mask(R, cols)
    X = R * mask
    e = ops.exp(X - ops.max(X, axis=1, keepdims=True)) * mask
    return e / ops.sum(e, axis=1, keepdims=True)


def cross_entropy(R, log_q=None, logq: float = 0.0, cols=None):
    """-log(softmax(R - logq * log Q)_target + 1e-24)."""
    if log_q is not None and logq > 0:
        R = R - logq * log_q[None, :]
    if cols is not None:  # columns out of the batch: weight 0 in the softmax
        R = ops.where(cols[None, :] > 0, R, -1e30)
    p = ops.softmax(R, axis=1)
    return -ops.log(ops.reshape(_diagonal(p), (-1,)) + EPS)


def bpr(R, cols=None):
    """2016 BPR: sum over ALL columns (diagonal included) of -log sigmoid(r_i - r_j)."""
    terms = ops.log_sigmoid(_diagonal(R) - R)
    return -ops.sum(terms if cols is None else terms * cols[None, :], axis=1)


def top1(R, cols=None):
    """2016 TOP1: mean_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)] - sigmoid(r_i^2) / ncols."""
    target = _diagonal(R)
    terms = ops.sigmoid(R - target) + ops.sigmoid(R * R)
    if cols is None:
        ncols = ops.cast(ops.shape(R)[1], R.dtype)
        term = ops.mean(terms, axis=1)
    else:
        ncols = ops.sum(cols)
        term = ops.sum(terms * cols[None, :], axis=1) / ncols
    return term - ops.reshape(ops.sigmoid(target * target), (-1,)) / ncols


def top1_max(R, cols=None):
    """sum_j s_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)], s = softmax over negatives."""
    s = softmax_negatives(R, cols)
    return ops.sum(s * (ops.sigmoid(R - _diagonal(R)) + ops.sigmoid(R * R)), axis=1)


def bpr_max(R, bpreg: float, cols=None):
    """-log(sum_j s_j sigmoid(r_i - r_j) + 1e-24) + bpreg * sum_j s_j r_j^2."""
    s = softmax_negatives(R, cols)
    hit = ops.sum(s * ops.sigmoid(_diagonal(R) - R), axis=1)
    return -ops.log(hit + EPS) + bpreg * ops.sum(s * R * R, axis=1)


def final_activation(name: str, elu_param: float = 1.0):
    """The activation applied to the scores before the loss."""
    if name == "linear":
        return lambda x: x
    if name == "tanh":
        return ops.tanh
    if name == "relu":
        return ops.relu
    if name == "elu":
        # x for x > 0, elu_param * (exp(x) - 1) otherwise (no overflow in the unused branch)
        return lambda x: ops.relu(x) + elu_param * ops.elu(ops.minimum(x, 0.0))
    raise ValueError(f"unknown final_act {name!r}; use linear, tanh, elu or relu")


def row_losses(name: str, R, log_q, logq: float, bpreg: float, cols=None):
    """Per-row loss of ``name`` (logQ is used by cross-entropy only). ``cols``: 1 for the
    columns in the batch, 0 for those of padding lanes (a fixed-shape step), which then
    count nowhere; ``None``: all columns count."""
    if name == "cross-entropy":
        return cross_entropy(R, log_q, logq, cols)
    if name == "top1":
        return top1(R, cols)
    if name == "bpr":
        return bpr(R, cols)
    if name == "top1-max":
        return top1_max(R, cols)
    if name == "bpr-max":
        return bpr_max(R, bpreg, cols)
    raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")
