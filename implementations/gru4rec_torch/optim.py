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

from . import cpu_kernels


@torch.no_grad()
def entries_update(param: torch.Tensor, acc: torch.Tensor, vel: torch.Tensor | None, spare: int,
                   idx: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, learning_rate: float,
                   momentum: float, eps: float, cpu_kernel: bool) -> None:
    """Adagrad-momentum update of rows ``idx`` of the table ``param`` in place, by increments.

    ``acc``/``vel``: its accumulator and momentum tables, the same rows as
    ``param`` and at least one more: row ``spare`` of both stays 0 (``vel``
    None without momentum). ``idx`` may repeat a row; ``mask`` (one bool per
    entry) marks the entries that carry a row's whole gradient, at most one
    per row, and ``grad`` (one row per entry, consumed) is 0 on the other
    entries. A row with no marked entry keeps its weights, accumulator and
    momentum. The accumulator, momentum and weights are raised with
    ``index_add_`` (the unmarked entries add exact zeros, read from and
    written to the spare row), so nothing here depends on how many distinct
    rows there are (no host synchronisation). The tables may be one seed's
    (``SparseAdagradMomentum.step_entries``) or every seed's, flattened
    (seeds.py): a row's update is the same arithmetic either way. On float32
    CPU tables with ``cpu_kernel``: the fused kernel of cpu_kernels.py.
    """
    if (cpu_kernel and param.device.type == "cpu" and param.dtype == torch.float32
            and param.is_contiguous()):  # the kernel writes through numpy views of the tables
        cpu_kernels.rows_update(_rows(param), _rows(acc), _rows(acc if vel is None else vel), idx.numpy(),
                                mask.numpy(), _rows(grad), learning_rate, momentum, eps)
        return
    sidx = torch.where(mask, idx, spare)
    g2 = grad * grad
    denom = acc.index_select(0, sidx).add_(g2)  # acc + g^2, as stored below
    acc.index_add_(0, sidx, g2)
    denom.add_(eps).sqrt_()  # sqrt(acc + eps)
    if momentum > 0:
        v_old = vel.index_select(0, sidx)  # 0 on unmarked entries, so v_new is 0 there
        v_new = torch.addcdiv(v_old * momentum, grad, denom, value=-learning_rate)
        param.index_add_(0, idx, v_new)
        vel.index_add_(0, sidx, v_new.sub_(v_old))
    else:
        param.index_add_(0, idx, grad.div_(denom), alpha=-learning_rate)


def dense_kernel_applies(*tables: torch.Tensor) -> bool:
    """Whether :func:`cpu_kernels.dense_update` can update ``tables`` in place
    through numpy views (contiguous float32 CPU tensors)."""
    return cpu_kernels.AVAILABLE and all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32
                                                       and t.is_contiguous()) for t in tables)


def _rows(t: torch.Tensor):
    """``t`` as a (rows, d) numpy array; shares ``t``'s memory when ``t`` is contiguous."""
    return t.detach().reshape(t.shape[0], -1).numpy()


class SparseAdagradMomentum:
    """Adagrad + momentum over named parameters (eps 1e-6, accumulators start at 0)."""

    def __init__(self, params: dict[str, torch.Tensor], learning_rate: float,
                 momentum: float = 0.0, eps: float = 1e-6, dense: tuple[str, ...] = (),
                 cpu_kernel: bool | None = None):
        """``dense``: names of the parameters :meth:`step_dense_all` updates
        together; their accumulators and momenta are views of one flat buffer.
        ``cpu_kernel``: whether :meth:`step_entries` uses the fused CPU kernel
        (``cpu_kernels``) on float32 CPU tensors; None (default): when numba
        is there. False: PyTorch's index operations everywhere.
        (Keeping a row's accumulator and momentum side by side, ``(rows, 2,
        d)``, to gather and scatter them at once measured slower.)"""
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        unknown = sorted(set(dense) - set(params))
        if unknown:
            raise ValueError(f"dense parameter(s) {unknown} are not among {sorted(params)}")
        self.params = params
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.eps = float(eps)
        # row-updated parameters: the state has one spare row at the end that
        # stays 0, where step_entries sends the entries that must not move
        self.acc, self.velocity, self._acc_rows, self._vel_rows = {}, {}, {}, {}
        for name, p in params.items():
            if name in dense:
                continue
            for full, view in ((self._acc_rows, self.acc), (self._vel_rows, self.velocity))[:1 + (self.momentum > 0)]:
                full[name] = torch.zeros((p.shape[0] + 1,) + tuple(p.shape[1:]), dtype=p.dtype, device=p.device)
                view[name] = full[name][:p.shape[0]]
        self.dense = tuple(dense)
        self.cpu_kernel = cpu_kernels.AVAILABLE if cpu_kernel is None else bool(cpu_kernel)
        if self.cpu_kernel and not cpu_kernels.AVAILABLE:
            raise RuntimeError("cpu_kernel=True needs numba, which cannot be imported here")
        if self.cpu_kernel and any(p.device.type == "cpu" for p in params.values()):
            cpu_kernels.warm_up("rows", "dense")  # loaded now, not in the first step
        # step_entries on the CPU: numpy views of each table, its accumulator and momentum
        # for the fused kernel, made once (_views; making them took ~11 us each, 8 a step)
        self._kernel_views = {}
        if self.dense:
            sizes = [params[n].numel() for n in self.dense]
            ref = params[self.dense[0]]
            self._flat_sizes = sizes
            self._flat_acc = torch.zeros(sum(sizes), dtype=ref.dtype, device=ref.device)
            self._flat_vel = torch.zeros_like(self._flat_acc) if self.momentum > 0 else None
            for key, flat, store in (("acc", self._flat_acc, self.acc), ("vel", self._flat_vel, self.velocity)):
                if flat is None:
                    continue
                for n, part in zip(self.dense, flat.split(sizes)):
                    store[n] = part.view(params[n].shape)
            self._dense_params = [params[n] for n in self.dense]
            self._dense_vel_views = [self.velocity[n] for n in self.dense] if self.momentum > 0 else None

    @torch.no_grad()
    def step_dense_all(self, grads) -> None:
        """:meth:`step_dense` of every ``dense`` parameter (``grads`` in that
        order), as a few operations on one flat buffer."""
        g = torch.cat([t.reshape(-1) for t in grads])
        if self.cpu_kernel and dense_kernel_applies(g, self._flat_acc, self._flat_vel):  # one pass (numba)
            acc = self._flat_acc.numpy()
            cpu_kernels.dense_update(g.numpy(), acc, acc if self._flat_vel is None else self._flat_vel.numpy(),
                                     self.learning_rate, self.momentum, self.eps)
            step = g  # without momentum: g / sqrt(acc + eps), in place
        else:
            self._flat_acc.addcmul_(g, g)
            step = g.div_(torch.add(self._flat_acc, self.eps).sqrt_())
            if self.momentum > 0:
                self._flat_vel.mul_(self.momentum).add_(step, alpha=-self.learning_rate)
        if self.momentum > 0:
            torch._foreach_add_(self._dense_params, self._dense_vel_views)
        else:
            parts = [part.view(p.shape) for part, p in zip(step.split(self._flat_sizes), self._dense_params)]
            torch._foreach_add_(self._dense_params, parts, alpha=-self.learning_rate)

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
        gradient and mask: every entry of it then writes the same values.
        (The training step uses :meth:`step_entries`.) ``mask`` (optional, one
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

    @torch.no_grad()
    def step_entries(self, name: str, idx: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor) -> None:
        """Update rows ``idx`` of parameter ``name`` in place, by increments
        (:func:`entries_update`, whose docstring says how)."""
        param = self.params[name]
        views = self._views(name) if self.cpu_kernel and grad.device.type == "cpu" else None
        if views is not None:  # entries_update's fused kernel, on the kept views
            g = grad.detach().numpy()
            cpu_kernels.rows_update(*views, idx.numpy(), mask.numpy(), g.reshape(g.shape[0], -1),
                                    self.learning_rate, self.momentum, self.eps)
            return
        entries_update(param, self._acc_rows[name], self._vel_rows.get(name), param.shape[0],
                       idx, grad, mask, self.learning_rate, self.momentum, self.eps, self.cpu_kernel)

    def _views(self, name: str):
        """(table, accumulator, momentum) of ``name`` as numpy views for the CPU
        kernel, kept while the three tensors keep their memory (seeds.py moves
        them into its stacks); None where entries_update would not use the kernel."""
        p, acc = self.params[name], self._acc_rows[name]
        vel = self._vel_rows.get(name, acc)
        key = (p.data_ptr(), acc.data_ptr(), vel.data_ptr())
        kept = self._kernel_views.get(name)
        if kept is not None and kept[0] == key:
            return kept[1]
        views = None
        if p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous():
            views = (_rows(p), _rows(acc), _rows(vel))
        self._kernel_views[name] = (key, views)
        return views

    def state_dict(self) -> dict:
        return {"acc": {k: v.clone() for k, v in self.acc.items()},
                "velocity": {k: v.clone() for k, v in self.velocity.items()}}

    def load_state_dict(self, state: dict) -> None:
        for store, saved in ((self.acc, state["acc"]), (self.velocity, state["velocity"])):
            if set(store) != set(saved):
                raise ValueError(f"optimizer state holds {sorted(saved)}, expected {sorted(store)}")
            for k in store:
                store[k].copy_(saved[k])
