"""GRU4Rec's losses and final activations, in the forms the authors' code uses.

Every loss takes the score matrix ``R`` of one mini-batch, shape
``(B, B + n_sample)``: row ``i`` is lane ``i``, the first ``B`` columns are the
targets of the mini-batch (so lane ``i``'s own target is on the diagonal,
``R[i, i]``) and the remaining columns are the extra negative samples shared
by the batch. ``R`` is taken after the final activation. Each function returns
the loss of every row, shape ``(B,)``; the training step sums the rows and
divides by the NOMINAL batch size (SPEC.md section 4), also when the batch has
shrunk at the end of an epoch.

The closed-form gradients (``*_grad``, :func:`loss_and_grad`) also take a
leading seed dimension, ``(S, B, M)`` (seeds trained together, seeds.py): every
reduction runs over the last dimension and every diagonal over the last two, so
each seed's slice is computed by the same kernels, in the same order, as alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("cross-entropy", "top1", "bpr", "top1-max", "bpr-max")
FINAL_ACTIVATIONS = ("linear", "tanh", "elu", "relu")


def final_activation(R: torch.Tensor, name: str, elu_param: float = 1.0) -> torch.Tensor:
    """Apply the final activation ``name`` to the scores."""
    if name == "linear":
        return R
    if name == "tanh":
        return torch.tanh(R)
    if name == "elu":
        return F.elu(R, alpha=elu_param)
    if name == "relu":
        return torch.relu(R)
    raise ValueError(f"unknown final_act {name!r}; use one of {FINAL_ACTIVATIONS}")


def target_scores(R: torch.Tensor) -> torch.Tensor:
    """r_i: each row's score of its own target, as a column ``(B, 1)``."""
    return torch.diagonal(R, 0, -2, -1).unsqueeze(-1)


def softmax_negatives(R: torch.Tensor) -> torch.Tensor:
    """s_j: softmax over each row with the target column masked out (weight 0)."""
    diagonal = torch.eye(R.shape[0], R.shape[1], dtype=torch.bool, device=R.device)
    return torch.softmax(R.masked_fill(diagonal, float("-inf")), dim=1)


def cross_entropy(R: torch.Tensor, logq_shift: torch.Tensor | None = None) -> torch.Tensor:
    """-log(softmax(R)_target + 1e-24); ``logq_shift`` (one value per column) is
    subtracted from the scores before the softmax (logQ correction)."""
    if logq_shift is not None:
        R = R - logq_shift
    p = torch.softmax(R, dim=1)
    return -torch.log(torch.diagonal(p) + 1e-24)


def top1(R: torch.Tensor) -> torch.Tensor:
    """TOP1 (ICLR 2016) as coded: mean over ALL columns j of
    sigmoid(r_j - r_i) + sigmoid(r_j^2), minus sigmoid(r_i^2) / n_columns."""
    r_i = target_scores(R)
    per_column = torch.sigmoid(R - r_i) + torch.sigmoid(R * R)
    return per_column.mean(dim=1) - torch.sigmoid(r_i.squeeze(1) ** 2) / R.shape[1]


def bpr(R: torch.Tensor) -> torch.Tensor:
    """BPR (ICLR 2016) as coded: SUM over ALL columns j (the diagonal included)
    of -log sigmoid(r_i - r_j)."""
    return -F.logsigmoid(target_scores(R) - R).sum(dim=1)


def top1_max(R: torch.Tensor) -> torch.Tensor:
    """TOP1-max (CIKM 2018): sum_j s_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)]."""
    s = softmax_negatives(R)
    return (s * (torch.sigmoid(R - target_scores(R)) + torch.sigmoid(R * R))).sum(dim=1)


def bpr_max(R: torch.Tensor, bpreg: float) -> torch.Tensor:
    """BPR-max (CIKM 2018): -log(sum_j s_j sigmoid(r_i - r_j) + 1e-24)
    + bpreg * sum_j s_j r_j^2."""
    s = softmax_negatives(R)
    ranking = -torch.log((s * torch.sigmoid(target_scores(R) - R)).sum(dim=1) + 1e-24)
    return ranking + bpreg * (s * R * R).sum(dim=1)


def row_losses(name: str, R: torch.Tensor, bpreg: float = 1.0,
               logq_shift: torch.Tensor | None = None) -> torch.Tensor:
    """The per-row loss ``name`` of the score matrix ``R``."""
    if name == "cross-entropy":
        return cross_entropy(R, logq_shift)
    if name == "top1":
        return top1(R)
    if name == "bpr":
        return bpr(R)
    if name == "top1-max":
        return top1_max(R)
    if name == "bpr-max":
        return bpr_max(R, bpreg)
    raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")


def activation_grad(raw: torch.Tensor, act: torch.Tensor, name: str, elu_param: float = 1.0) -> torch.Tensor:
    """d act / d raw of the final activation ``name``, elementwise (``act`` is its output)."""
    if name == "linear":
        return torch.ones_like(raw)
    if name == "tanh":
        return 1.0 - act * act
    if name == "elu":  # x > 0: 1; else elu_param * exp(x) = act + elu_param
        return torch.where(raw > 0, 1.0, act + elu_param)
    if name == "relu":
        return (raw > 0).to(raw.dtype)
    raise ValueError(f"unknown final_act {name!r}; use one of {FINAL_ACTIVATIONS}")


def _diag(R: torch.Tensor) -> torch.Tensor:
    """The diagonal of ``R``'s last two dimensions (a view: writes go to ``R``)."""
    return torch.diagonal(R, 0, -2, -1)


def _negatives_softmax(R: torch.Tensor) -> torch.Tensor:
    """:func:`softmax_negatives` over the last dimension (with a seed dimension
    too): a copy of ``R`` with -inf written on its diagonal (on the CPU
    ``masked_fill`` with the diagonal mask took 70-110 us for 32 x 2,080, the
    copy 18)."""
    Rm = R.clone()
    _diag(Rm).fill_(float("-inf"))
    return torch.softmax(Rm, dim=-1)


def _elu(raw: torch.Tensor, elu_param: float) -> torch.Tensor:
    """:func:`final_activation` ``elu``: on the CPU as elu_param * (exp(min(x, 0))
    - 1) + max(x, 0), exact for x > 0 and within float32 rounding of expm1
    below (PyTorch's CPU ``elu`` kernel took 200-220 us for 32 x 2,080, this
    about 150); elsewhere ``F.elu``."""
    if raw.device.type != "cpu":
        return F.elu(raw, alpha=elu_param)
    return torch.exp(raw.clamp_max(0.0)).sub_(1.0).mul_(elu_param).add_(raw.clamp_min(0.0))


def cross_entropy_grad(R: torch.Tensor, logq_shift: torch.Tensor | None, scale: float):
    """:func:`cross_entropy` and ``scale`` times its gradient, in closed form.

    With p = softmax(R - shift) and c_i = p_ii / (p_ii + 1e-24) (1 unless
    p_ii underflows): d/dR_ij [-log(p_ii + 1e-24)] = c_i (p_ij - [i == j]).
    """
    Z = R if logq_shift is None else R - logq_shift
    P = torch.softmax(Z, dim=-1)
    p_ii = _diag(P)
    rows = -torch.log(p_ii + 1e-24)
    c = p_ii / (p_ii + 1e-24) * scale
    dR = P.mul_(c.unsqueeze(-1))
    _diag(dR).sub_(c)
    return rows, dR


def bpr_max_grad(R: torch.Tensor, bpreg: float, scale: float):
    """:func:`bpr_max` and ``scale`` times its gradient, in closed form.

    With s the negative softmax (s_i = 0), a_j = sigmoid(r_i - r_j),
    A = sum_j s_j a_j, Q = sum_j s_j r_j^2 and e = 1e-24, for j != i
    dL/dr_j = s_j [(A - a_j^2) / (A + e) + bpreg (r_j^2 + 2 r_j - Q)]
    and dL/dr_i = -(A - sum_j s_j a_j^2) / (A + e).
    """
    s = _negatives_softmax(R)
    a = torch.sigmoid(target_scores(R) - R)
    A = torch.linalg.vecdot(s, a).unsqueeze(-1)
    R2 = R * R
    Q = torch.linalg.vecdot(s, R2).unsqueeze(-1)
    rows = (-torch.log(A + 1e-24) + bpreg * Q).squeeze(-1)
    inv = scale / (A + 1e-24)
    a.mul_(a)  # a^2
    diag = (torch.linalg.vecdot(s, a).unsqueeze(-1) - A) * inv
    # s [A inv - bpreg Q - inv a^2 + bpreg (r^2 + 2 r)], every term times scale
    dR = torch.addcmul(A * inv - (bpreg * scale) * Q, a, inv, value=-1.0)
    if bpreg != 0:
        dR.add_(torch.add(R2, R, alpha=2.0), alpha=bpreg * scale)
    dR.mul_(s)
    _diag(dR).copy_(diag.squeeze(-1))
    return rows, dR


def top1_grad(R: torch.Tensor, scale: float):
    """:func:`top1` and ``scale`` times its gradient, in closed form.

    With N columns, a_j = sigmoid(r_j - r_i) and b_j = sigmoid(r_j^2): for
    j != i dL/dr_j = [a_j (1 - a_j) + 2 r_j b_j (1 - b_j)] / N; the target's
    own column is constant in the first sum (a_i = sigmoid(0)) and its b_i
    term cancels, so dL/dr_i = -sum_{j != i} a_j (1 - a_j) / N.
    """
    n = R.shape[-1]
    a = torch.sigmoid(R - target_scores(R))
    b = torch.sigmoid(R * R)
    rows = (a.sum(dim=-1) + b.sum(dim=-1)) / n - _diag(b) / n
    da = a.mul_(1.0 - a)  # a (1 - a); 1/4 on the diagonal
    diag = (da.sum(dim=-1) - _diag(da)) * (-scale / n)
    dR = torch.addcmul(da, b.mul_(1.0 - b), R, value=2.0).mul_(scale / n)
    _diag(dR).copy_(diag)
    return rows, dR


def bpr_grad(R: torch.Tensor, scale: float):
    """:func:`bpr` and ``scale`` times its gradient, in closed form: for
    j != i dL/dr_j = sigmoid(r_j - r_i), and dL/dr_i = -sum_{j != i} sigmoid(r_j - r_i)."""
    Z = R - target_scores(R)
    rows = -F.logsigmoid(-Z).sum(dim=-1)
    dR = torch.sigmoid(Z)
    diag = (dR.sum(dim=-1) - _diag(dR)) * -scale
    dR.mul_(scale)
    _diag(dR).copy_(diag)
    return rows, dR


def top1_max_grad(R: torch.Tensor, scale: float):
    """:func:`top1_max` and ``scale`` times its gradient, in closed form.

    With s the negative softmax (s_i = 0), a_j = sigmoid(r_j - r_i),
    b_j = sigmoid(r_j^2), u_j = a_j + b_j and L = sum_j s_j u_j: for j != i
    dL/dr_j = s_j [u_j - L + a_j (1 - a_j) + 2 r_j b_j (1 - b_j)], and
    dL/dr_i = -sum_j s_j a_j (1 - a_j).
    """
    s = _negatives_softmax(R)
    a = torch.sigmoid(R - target_scores(R))
    b = torch.sigmoid(R * R)
    u = a + b
    rows = torch.linalg.vecdot(s, u)
    da = a.mul_(1.0 - a)
    diag = torch.linalg.vecdot(s, da) * -scale
    dR = torch.addcmul(u.sub_(rows.unsqueeze(-1)).add_(da), b.mul_(1.0 - b), R, value=2.0)
    dR.mul_(s).mul_(scale)
    _diag(dR).copy_(diag)
    return rows, dR


_GRADS = {"top1": top1_grad, "bpr": bpr_grad, "top1-max": top1_max_grad}


def loss_and_grad(name: str, raw: torch.Tensor, final_act: str, elu_param: float = 1.0, bpreg: float = 1.0,
                  logq_shift: torch.Tensor | None = None, scale: float = 1.0):
    """Per-row loss ``name`` of the raw scores ``raw`` (before the final
    activation) and ``scale`` times the gradient of the rows' sum with respect
    to ``raw``, every one in closed form (no autograd; each is tested against
    finite differences of its formula)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")
    R = _elu(raw, elu_param) if final_act == "elu" else final_activation(raw, final_act, elu_param)
    if name == "cross-entropy":
        rows, dR = cross_entropy_grad(R, logq_shift, scale)
    elif name == "bpr-max":
        rows, dR = bpr_max_grad(R, bpreg, scale)
    else:
        rows, dR = _GRADS[name](R, scale)
    if final_act == "elu":  # one fused kernel: dR * (1 if raw > 0 else R + elu_param)
        dR = torch.ops.aten.elu_backward(dR, elu_param, 1.0, 1.0, True, R)
    elif final_act != "linear":
        dR = dR.mul_(activation_grad(raw, R, final_act, elu_param))
    return rows, dR
