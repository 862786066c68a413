"""Seeds trained together: the S seeds of one run as one batched model.

The seeds of a run are independent models over the same data. The sessions
are served in an order that does not depend on the seed (by first-event time
or by SessionId, SPEC.md section 4: not shuffled), so every seed sees the same
mini-batches, resets and shrinking batch at the epoch's end; what differs per
seed is its initialisation, its extra negatives (its own sample store) and
its dropout masks (its own key). :class:`SeedsTogether` runs one training step
for all of them: every weight and optimizer table gets a leading seed
dimension, the matrix products become batched (``model.mm``: ``bmm``), the
losses and the GRU layers run on ``(S, B, .)`` tensors, and the item rows of
all seeds are gathered and updated as one flat table (row ``s * (n_items +
1) + i`` is item ``i`` of seed ``s``; the extra row per seed is the
optimizer's spare row).

Each seed stays a full :class:`model.GRU4Rec`: its parameters and optimizer
state become views into the stacked tables, so its own ``evaluate``,
``save_weights``, ``state_dict`` and checkpoint work unchanged and see the
weights the batched step writes.

Exactness: on the CPU a seed trained together computes the same floats, in the
same order, as trained alone (every kernel works row by row or seed by seed;
products below PyTorch's small-``bmm`` threshold are made seed by seed,
``model.SMALL_BMM``), so the weights and the rank records are identical
(tests/test_gru4rec_torch.py, every loss and embedding mode, dropout on). On a
GPU, cuBLAS may round a batched product differently from a single one: equal
to float32 tolerance there.
"""
from __future__ import annotations

import os

import torch

from . import cpu_kernels, losses
from .model import GRU4Rec, dropout_mask, gru_backward, gru_train, one_hot_sum, site_number, mm
from .optim import dense_kernel_applies, entries_update


def seeds_together_enabled() -> bool:
    """False when ``GRU4REC_TORCH_SEEDS_TOGETHER`` is 0/false/no/off (train the seeds one after the other)."""
    return os.environ.get("GRU4REC_TORCH_SEEDS_TOGETHER", "1").lower() not in ("0", "false", "no", "off")


class SeedsTogether:
    """``models`` (GRU4Rec of the same params and item index, any seeds) trained as one batched model.

    The step API of GRU4Rec as used by steps.py and train.py: ``H`` (a list of
    ``(S, lanes, hidden)`` states), ``zero_state``, ``reset_lanes``,
    ``keep_lanes``, ``next_negatives`` (``(S, n_sample)``), ``next_dropout_key``
    (one key per seed), ``_step`` (returns the ``(S,)`` loss sums) and
    ``train_step``. Making one copies the models' current weights and
    optimizer state into the stacked tables.
    """

    def __init__(self, models: list[GRU4Rec], deterministic: bool | None = None):
        if not models:
            raise ValueError("SeedsTogether: no models")
        m0 = models[0]
        for m in models[1:]:
            if m.params != m0.params or m.n_items != m0.n_items or m.device != m0.device:
                raise ValueError("SeedsTogether: the models differ in params, item count or device "
                                 f"(seed {m0.seed}: {m0.n_items} items on {m0.device}; seed {m.seed}: "
                                 f"{m.n_items} on {m.device})")
            if not torch.equal(m.log_support, m0.log_support):
                raise ValueError(f"SeedsTogether: seeds {m0.seed} and {m.seed} have different item support")
        if any(m.dropout_mask_fn is not None for m in models):
            raise ValueError("SeedsTogether: dropout_mask_fn (the test hook) is for models trained alone")
        self.models = list(models)
        self.n_seeds = S = len(models)
        self.params = m0.params
        self.n_items = n = m0.n_items
        self.device = dev = m0.device
        self.deterministic = m0.deterministic if deterministic is None else deterministic
        self.has_dropout = m0.has_dropout
        self.dropout_p = m0.dropout_p
        self.layers = m0.net.gru
        self.constrained = m0.net.constrained
        self._input_name = m0._input_name
        self._logq_shift = m0._logq_shift
        self.loss_shape = (S,)
        self.dropout_mask_fn = None  # the test hook is for a model alone (refused above)
        self._rows = n + 1  # rows per seed in the flat tables: the items and the spare row
        self._base = torch.arange(S, device=dev).unsqueeze(1) * self._rows  # (S, 1)
        self._slot = torch.zeros(S * self._rows, dtype=torch.int64, device=dev)
        self._arange = torch.arange(0, device=dev)

        # item tables: (S, n + 1, ...) stacks; each seed's parameter and state become views of them
        opt0 = m0.optimizer
        self.momentum, self.learning_rate, self.eps = opt0.momentum, opt0.learning_rate, opt0.eps
        self.cpu_kernel = opt0.cpu_kernel
        self.item = {}  # name -> (weights, accumulator, momentum or None), flat: (S * (n + 1), ...)
        for name in m0.item_params:
            shape = tuple(m0.item_params[name].shape)
            tables = [torch.zeros((S, n + 1) + shape[1:], dtype=torch.float32, device=dev) for _ in range(3)]
            W, A, V = tables
            for s, m in enumerate(models):
                W[s, :n] = m.item_params[name]
                m.item_params[name].data = W[s, :n]
                A[s] = m.optimizer._acc_rows[name]
                m.optimizer._acc_rows[name] = A[s]
                m.optimizer.acc[name] = A[s, :n]
                if self.momentum > 0:
                    V[s] = m.optimizer._vel_rows[name]
                    m.optimizer._vel_rows[name] = V[s]
                    m.optimizer.velocity[name] = V[s, :n]
            flat = (S * (n + 1),) + shape[1:]
            self.item[name] = (W.view(flat), A.view(flat), V.view(flat) if self.momentum > 0 else None)

        # dense weights: one (S, P) table, each seed's row holding its parameters in dense_params order
        names = list(m0.dense_params)
        sizes = [m0.dense_params[k].numel() for k in names]
        P = sum(sizes)
        self.dense = torch.zeros(S, P, device=dev)
        self.dense_acc = torch.zeros(S, P, device=dev)
        self.dense_vel = torch.zeros(S, P, device=dev) if self.momentum > 0 else None
        for s, m in enumerate(models):
            opt = m.optimizer
            self.dense[s] = torch.cat([m.dense_params[k].detach().reshape(-1) for k in names])
            self.dense_acc[s] = opt._flat_acc
            opt._flat_acc = self.dense_acc[s]
            if self.momentum > 0:
                self.dense_vel[s] = opt._flat_vel
                opt._flat_vel = self.dense_vel[s]
            for k, w, a, v in zip(names, self.dense[s].split(sizes), opt._flat_acc.split(sizes),
                                  (opt._flat_vel.split(sizes) if self.momentum > 0 else [None] * len(sizes))):
                m.dense_params[k].data = w.view(m.dense_params[k].shape)
                opt.acc[k] = a.view(m.dense_params[k].shape)
                if v is not None:
                    opt.velocity[k] = v.view(m.dense_params[k].shape)
            if self.momentum > 0:
                opt._dense_vel_views = [opt.velocity[k] for k in opt.dense]
        # each layer's weights with the seed dimension: views of the (S, P) table
        views, off = {}, 0
        for k, size in zip(names, sizes):
            views[k] = self.dense[:, off:off + size].view((S,) + tuple(m0.dense_params[k].shape))
            off += size
        self.layer_weights = []
        for i, layer in enumerate(self.layers):
            own = {id(t): k for k, t in m0.dense_params.items()}
            self.layer_weights.append(tuple(views[own[id(t)]] for t in layer.weights()))
        self.H = self.zero_state(self.params["batch_size"])

    # ----------------------------------------------------------------- state
    def zero_state(self, lanes: int) -> list[torch.Tensor]:
        return [torch.zeros(self.n_seeds, lanes, h, device=self.device) for h in self.params["layers"]]

    def reset_lanes(self, mask) -> None:
        """Zero the hidden state of the lanes where ``mask`` is true, in every seed."""
        mask = torch.as_tensor(mask, dtype=torch.bool, device=self.device).unsqueeze(1)
        self.H = [h.masked_fill(mask, 0.0) for h in self.H]

    def keep_lanes(self, idx) -> None:
        """Keep only lanes ``idx`` (the batch shrinks), in every seed."""
        idx = torch.as_tensor(idx, dtype=torch.int64, device=self.device)
        self.H = [h.index_select(1, idx) for h in self.H]

    def next_negatives(self) -> torch.Tensor | None:
        """Each seed's extra negatives for the next mini-batch from its own store: ``(S, n_sample)``."""
        if self.params["n_sample"] <= 0:
            return None
        return torch.stack([m.next_negatives() for m in self.models])

    def next_dropout_key(self):
        """Each seed's dropout key of the next step (a list; None without dropout)."""
        keys = [m.next_dropout_key() for m in self.models]
        return keys if self.has_dropout else None

    def fixed_order(self) -> bool:
        if self.deterministic is not None:
            return self.deterministic
        return self.device.type != "cpu" and torch.are_deterministic_algorithms_enabled()

    # -------------------------------------------------------------- training
    def _mask_of(self, dkey):
        if isinstance(dkey, list):
            dkey = torch.tensor(dkey, dtype=torch.int64, device=self.device)

        def mask_of(x: torch.Tensor, site: str) -> torch.Tensor | None:
            p = self.dropout_p[site]
            return None if p == 0.0 else dropout_mask(tuple(x.shape), site_number(site), dkey, p)
        return mask_of

    #: GRU4Rec's representative-entry lookup, on the flat index of every seed (seeds' rows never
    #: meet); it reads this object's own ``_slot`` and ``_arange`` buffers.
    _first_entries = GRU4Rec._first_entries

    def _update(self, name: str, idx: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor) -> None:
        W, A, V = self.item[name]
        entries_update(W, A, V, self.n_items, idx, grad, mask, self.learning_rate, self.momentum, self.eps,
                       self.cpu_kernel)

    def _dense_update(self, grads: list) -> None:
        """SparseAdagradMomentum.step_dense_all of every seed at once, on the (S, P) tables."""
        S = self.n_seeds
        g = torch.cat([t.reshape(S, -1) for t in grads], dim=1)
        if self.cpu_kernel and dense_kernel_applies(g, self.dense_acc, self.dense_vel):
            # elementwise, so every seed's part is updated exactly as alone (optim.step_dense_all)
            acc = self.dense_acc.numpy().reshape(-1)
            cpu_kernels.dense_update(g.numpy().reshape(-1), acc,
                                     acc if self.dense_vel is None else self.dense_vel.numpy().reshape(-1),
                                     self.learning_rate, self.momentum, self.eps)
            if self.momentum > 0:
                self.dense.add_(self.dense_vel)
            else:
                self.dense.add_(g, alpha=-self.learning_rate)
            return
        self.dense_acc.addcmul_(g, g)
        step = g.div_(torch.add(self.dense_acc, self.eps).sqrt_())
        if self.momentum > 0:
            self.dense_vel.mul_(self.momentum).add_(step, alpha=-self.learning_rate)
            self.dense.add_(self.dense_vel)
        else:
            self.dense.add_(step, alpha=-self.learning_rate)

    @torch.no_grad()
    def _step(self, in_idx: torch.Tensor, out_idx: torch.Tensor, neg_idx: torch.Tensor | None,
              dkey=None) -> torch.Tensor:
        """GRU4Rec._step for every seed: the same inputs and targets (B,), each
        seed's own negatives ``neg_idx`` (S, n_sample) and dropout keys;
        returns the (S,) sums of the per-row losses."""
        p, S, dev = self.params, self.n_seeds, self.device
        B = in_idx.shape[0]
        base = self._base
        out = out_idx.unsqueeze(0).expand(S, B)
        y = out if neg_idx is None else torch.cat([out, neg_idx], dim=1)  # (S, M)
        M = y.shape[1]
        y_flat = (y + base).reshape(-1)
        Wy, By = self.item["Wy"][0], self.item["By"][0]
        wy = Wy.index_select(0, y_flat).view(S, M, -1)
        by = By.index_select(0, y_flat).view(S, M)
        in_flat = (in_idx.unsqueeze(0) + base).reshape(-1)
        x = self.item[self._input_name][0].index_select(0, in_flat).view(S, B, -1)

        hd, new_H, saved = gru_train(self.layers, self.layer_weights, x, self.H, self._mask_of(dkey))
        shift = None
        if self._logq_shift is not None:
            target_shift, sample_shift = self._logq_shift
            shift = target_shift.index_select(0, out_idx).unsqueeze(0).expand(S, B)
            if neg_idx is not None:
                shift = torch.cat([shift, sample_shift.index_select(0, neg_idx.reshape(-1)).view(S, -1)], dim=1)
            if p["final_act"] == "linear":
                by, shift = by - shift, None
            else:
                shift = shift.unsqueeze(1)  # (S, 1, M): one value per column of each seed
        R = mm(hd, wy.mT, by)
        rows_loss, dR = losses.loss_and_grad(p["loss"], R, p["final_act"], p["elu_param"], p["bpreg"], shift,
                                             1.0 / p["batch_size"])
        dh = mm(dR, wy)
        grads, g_x = gru_backward(self.layers, saved, dh)
        self._dense_update(grads)

        # item rows, every seed in one flat table (see GRU4Rec._step for the single seed)
        d = hd.shape[-1]
        idx = torch.cat([in_idx.unsqueeze(0).expand(S, B), y], dim=1) if self.constrained else y  # (S, K)
        K = idx.shape[1]
        off = B if self.constrained else 0
        idx_flat = (idx + base).reshape(-1)
        pos, first = self._first_entries(idx_flat)  # flat positions in [0, S * K)
        pos2 = pos.view(S, K)
        fixed = self.fixed_order()
        if fixed:
            local = pos2 - torch.arange(S, device=dev).unsqueeze(1) * K
            dR_rows = one_hot_sum(local[:, off:], dR, K)  # (S, B, K)
            g = mm(dR_rows.mT, hd)  # (S, K, d)
            if self.constrained:
                g += one_hot_sum(local[:, :B], g_x.mT, K).mT
            gb = dR_rows.sum(-2).reshape(-1)
            g = g.reshape(S * K, d)
        else:
            y_pos = pos2[:, off:].reshape(-1)
            dR_flat = torch.zeros(B, S * K, device=dev).index_add_(1, y_pos, dR.transpose(0, 1).reshape(B, S * M))
            dR_rows = dR_flat.view(B, S, K).permute(1, 2, 0)  # (S, K, B): each seed's dR_rows^T
            if dev.type == "cpu":  # seed by seed: bmm copies this strided operand first (30% slower)
                g = torch.stack([torch.mm(dR_rows[s], hd[s]) for s in range(S)]).reshape(S * K, d)
            else:
                g = mm(dR_rows, hd).reshape(S * K, d)
            if self.constrained:
                g.index_add_(0, pos2[:, :B].reshape(-1), g_x.reshape(S * B, d))
            gb = dR_flat.sum(0)
        if self.constrained:
            b_mask = torch.zeros(S * K, dtype=torch.bool, device=dev).index_fill_(0, pos2[:, off:].reshape(-1), True)
        else:
            b_mask = first
        self._update("Wy", idx_flat, g, first)
        self._update("By", idx_flat, gb, b_mask)
        if not self.constrained:
            d_in = x.shape[-1]
            pos, first = self._first_entries(in_flat)
            if fixed:
                local = pos.view(S, B) - torch.arange(S, device=dev).unsqueeze(1) * B
                g = one_hot_sum(local, g_x.mT, B).mT.reshape(S * B, d_in)
            else:
                g = torch.zeros(S * B, d_in, device=dev).index_add_(0, pos, g_x.reshape(S * B, d_in))
            self._update(self._input_name, in_flat, g, first)
        self.H = new_H
        return rows_loss.sum(-1)

    def train_step(self, in_idx, out_idx, neg_idx=None) -> list[float]:
        """One mini-batch for every seed (``neg_idx``: (S, n_sample), or None to
        take each seed's from its store); returns each seed's loss as
        GRU4Rec.train_step does."""
        dev = self.device
        neg = self.next_negatives() if neg_idx is None else torch.as_tensor(neg_idx, dtype=torch.int64, device=dev)
        sums = self._step(torch.as_tensor(in_idx, dtype=torch.int64, device=dev),
                          torch.as_tensor(out_idx, dtype=torch.int64, device=dev), neg, self.next_dropout_key())
        return (sums.double() / self.params["batch_size"]).tolist()
