"""Adagrad with classic momentum, sparse over item rows (SPEC.md section 4).

For every parameter row that has a gradient in this step:

    acc += g^2
    v    = momentum * v - lr * g / sqrt(acc + eps)
    w   += v

Dense parameters (the GRU weights) take this update every step. Item
matrices (output weights and biases, input embeddings) only take it on the
rows used by the mini-batch: the other rows keep their weights, their
accumulator AND their momentum exactly as they were. Gradients of a row that
occurs several times in a mini-batch are summed first (the update is not
linear in g). No weight decay, no clipping.
"""
from __future__ import annotations

import torch


class SparseAdagradMomentum:
    """Adagrad + momentum over named parameters (eps 1e-6, accumulators start at 0)."""

    def __init__(self, params: dict[str, torch.Tensor], learning_rate: float,
                 momentum: float = 0.0, eps: float = 1e-6):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        self.params = params
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.acc = {name: torch.zeros_like(p) for name, p in params.items()}
        self.velocity = ({name: torch.zeros_like(p) for name, p in params.items()}
                         if self.momentum > 0 else {})

    @torch.no_grad()
    def step_dense(self, name: str, grad: torch.Tensor) -> None:
        """Update every element of parameter ``name``."""
        acc = self.acc[name]
        acc.addcmul_(grad, grad)
        step = grad / torch.sqrt(acc + self.eps)
        if self.momentum > 0:
            v = self.velocity[name]
            v.mul_(self.momentum).add_(step, alpha=-self.learning_rate)
            self.params[name].add_(v)
        else:
            self.params[name].add_(step, alpha=-self.learning_rate)

    @torch.no_grad()
    def step_rows(self, name: str, rows: torch.Tensor, grad: torch.Tensor,
                  mask: torch.Tensor | None = None, rows_now: torch.Tensor | None = None) -> None:
        """Update only ``rows`` of parameter ``name`` with ``grad`` (one row each).

        ``rows`` are distinct, except that a row may repeat with the SAME
        gradient and mask (the fixed-size tail of ``model.unique_rows``):
        every entry of it then writes the same values. ``mask`` (optional, one
        bool per row): rows where it is false have no gradient in this step
        (their ``grad`` must be 0) and are left alone. ``rows_now``: the
        current ``params[name][rows]`` when the caller has them (saves a gather).
        """
        param = self.params[name]
        acc_rows = self.acc[name].index_select(0, rows).addcmul_(grad, grad)
        self.acc[name].index_copy_(0, rows, acc_rows)
        step = grad / torch.sqrt(acc_rows.add_(self.eps))
        w_rows = param.index_select(0, rows) if rows_now is None else rows_now
        if self.momentum > 0:
            v_old = self.velocity[name].index_select(0, rows)
            v_rows = v_old * self.momentum - self.learning_rate * step
            if mask is not None:
                m = mask.reshape((-1,) + (1,) * (v_rows.dim() - 1))
                v_rows = torch.where(m, v_rows, v_old)
                self.velocity[name].index_copy_(0, rows, v_rows)
                param.index_copy_(0, rows, w_rows + torch.where(m, v_rows, 0.0))
            else:
                self.velocity[name].index_copy_(0, rows, v_rows)
                param.index_copy_(0, rows, w_rows + v_rows)
        else:  # zero gradient => zero step: the mask changes nothing
            param.index_copy_(0, rows, w_rows.add(step, alpha=-self.learning_rate))

    def state_dict(self) -> dict:
        return {"acc": {k: v.clone() for k, v in self.acc.items()},
                "velocity": {k: v.clone() for k, v in self.velocity.items()}}

    def load_state_dict(self, state: dict) -> None:
        for store, saved in ((self.acc, state["acc"]), (self.velocity, state["velocity"])):
            if set(store) != set(saved):
                raise ValueError(f"optimizer state holds {sorted(saved)}, expected {sorted(store)}")
            for k in store:
                store[k].copy_(saved[k])
