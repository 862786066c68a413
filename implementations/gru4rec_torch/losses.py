"""GRU4Rec's losses and final activations, in the forms the authors' code uses.

Every loss takes the score matrix ``R`` of one mini-batch, shape
``(B, B + n_sample)``: row ``i`` is lane ``i``, the first ``B`` columns are the
targets of the mini-batch (so lane ``i``'s own target is on the diagonal,
``R[i, i]``) and the remaining columns are the extra negative samples shared
by the batch. ``R`` is taken after the final activation. Each function returns
the loss of every row, shape ``(B,)``; the training step sums the rows and
divides by the NOMINAL batch size (SPEC.md section 4), also when the batch has
shrunk at the end of an epoch.
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
    return torch.diagonal(R).unsqueeze(1)


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
