"""GRU4Rec in PyTorch (SPEC.md section 4; shared interface: ../GRU4REC_API.md).

The network (:class:`GRU4RecNet`) is an input layer (one-hot, a separate
embedding, or the output matrix reused as the embedding), a stack of GRU
layers and the item output ``h . Wy[Y]^T + By[Y]``. :class:`GRU4Rec` wraps it
with the session-parallel hidden state, the sample store and the sparse
Adagrad-with-momentum optimizer, and exposes the low-level API shared with the
Keras implementation.

Item matrices (``Wy``, ``By``, ``E``, the one-hot layer's ``Wx``) never take a
dense gradient: each step gathers the rows it uses, differentiates the GRU
stack, the output layer and the loss by hand (no autograd graph; every loss
has a closed-form gradient, losses.loss_and_grad), and updates only those rows.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from gru4rec_repro.gru4rec_params import OFFICIAL_DEFAULTS, OUR_DEFAULTS, dropout_rates, resolve

from . import cpu_kernels, losses
from .data import session_data, session_parallel
from .optim import SparseAdagradMomentum
from .sampling import SampleStore

#: Hyperparameters (GRU4REC_API.md) and their defaults: the official PyTorch
#: code's defaults plus this project's keys (gru4rec_repro/gru4rec_params.py).
DEFAULTS: dict = {**OFFICIAL_DEFAULTS, **OUR_DEFAULTS}


def resolve_params(params: dict | None) -> dict:
    """The complete settings of a run (:func:`gru4rec_repro.gru4rec_params.resolve`):
    official defaults, ``params_file``/``ps``, the ELU rule of BPR-max; unknown
    names, contradictions and bad values are errors."""
    p = resolve(params)
    if p["final_act"] not in losses.FINAL_ACTIVATIONS:  # resolve() knows the same names
        raise ValueError(f"gru4rec_torch: final_act {p['final_act']!r} is not one of {losses.FINAL_ACTIVATIONS}")
    return p


def uniform_init_(tensor: torch.Tensor, generator: torch.Generator, blocks: int = 1, dim: int = 0) -> torch.Tensor:
    """Uniform +-sqrt(6 / (fan_in + fan_out)), each of ``blocks`` blocks along ``dim`` sized as its own matrix."""
    with torch.no_grad():
        for block in tensor.chunk(blocks, dim=dim):
            sigma = math.sqrt(6.0 / (block.shape[0] + block.shape[1]))
            block.uniform_(-sigma, sigma, generator=generator)
    return tensor


def _item_parameter(shape, generator=None) -> nn.Parameter:
    """An item matrix: updated row-sparsely by hand, so autograd never tracks it."""
    t = torch.zeros(shape)
    if generator is not None:
        uniform_init_(t, generator)
    return nn.Parameter(t, requires_grad=False)


#: PyTorch's CPU ``bmm`` multiplies a product smaller than this (contraction x
#: rows x columns) with its own loop, which rounds differently from ``mm``; such
#: products are made seed by seed (:func:`mm`), so that seeds trained together
#: round exactly as seeds trained alone (tests/test_gru4rec_torch.py checks both sides
#: of the threshold, so a PyTorch that moves it fails a test).
SMALL_BMM = 400


def mm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b (+ bias)``: ``torch.mm``/``addmm`` on matrices; on a leading seed
    dimension ``(S, m, k) @ (S, k, n)``, ``bmm``/``baddbmm`` (seed by seed on the
    CPU for small products, see :data:`SMALL_BMM`). ``bias``: one row per seed
    ``(S, n)`` (broadcast over rows) or a full ``(S, m, n)``; for matrices as addmm takes it."""
    if a.dim() == 2:
        return torch.mm(a, b) if bias is None else torch.addmm(bias, a, b)
    if a.device.type == "cpu" and a.shape[1] * a.shape[2] * b.shape[2] < SMALL_BMM:
        return torch.stack([mm(a[s], b[s], None if bias is None else bias[s]) for s in range(a.shape[0])])
    if bias is None:
        return torch.bmm(a, b)
    return torch.baddbmm(bias.unsqueeze(1) if bias.dim() == 2 else bias, a, b)


def _row(b: torch.Tensor) -> torch.Tensor:
    """A bias ``(n,)`` or per seed ``(S, n)``, shaped to add to rows ``(B, n)`` / ``(S, B, n)``."""
    return b if b.dim() == 1 else b.unsqueeze(1)


class OneHotGRULayer(nn.Module):
    """First GRU layer on one-hot input, in the original GRU form.

    ``Wx`` (n_items, 3H) holds the input weights of the (candidate, reset,
    update) blocks; a one-hot input selects one row, so the layer's input is
    that row (an embedding lookup, never a one-hot vector). With
    v = Wx[x] + b = (v_n, v_r, v_z):
    [r, z] = sigmoid([v_r, v_z] + h Wrz); n = tanh((r * h) Wh + v_n);
    h' = (1 - z) * h + z * n.
    """

    def __init__(self, n_items: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.hidden = hidden
        self.Wx = nn.Parameter(uniform_init_(torch.zeros(n_items, 3 * hidden), generator, 3, dim=1),
                               requires_grad=False)
        self.Wrz = nn.Parameter(uniform_init_(torch.zeros(hidden, 2 * hidden), generator, 2, dim=1))
        self.Wh = nn.Parameter(uniform_init_(torch.zeros(hidden, hidden), generator))
        self.b = nn.Parameter(torch.zeros(3 * hidden))

    def forward(self, wx_rows: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        v_n, v_rz = (wx_rows + self.b).split([self.hidden, 2 * self.hidden], dim=1)
        r, z = torch.sigmoid(torch.addmm(v_rz, h, self.Wrz)).chunk(2, dim=1)
        n = torch.tanh(torch.addmm(v_n, r * h, self.Wh))
        return torch.lerp(h, n, z)  # (1 - z) * h + z * n

    def weights(self) -> tuple:
        """The dense weights in the order :meth:`forward_train` takes them (and the gradients come)."""
        return self.Wrz, self.Wh, self.b

    @torch.no_grad()
    def forward_train(self, wx_rows: torch.Tensor, h: torch.Tensor, w: tuple | None = None):
        """:meth:`forward` without autograd, keeping what :meth:`backward` needs.
        ``w``: the weights (default :meth:`weights`); with a leading seed
        dimension on ``w``, ``wx_rows`` and ``h``, every seed at once."""
        Wrz, Wh, b = self.weights() if w is None else w
        v_n, v_rz = (wx_rows + _row(b)).split([self.hidden, 2 * self.hidden], dim=-1)
        rz = torch.sigmoid(mm(h, Wrz, v_rz))
        r, z = rz.chunk(2, dim=-1)
        rh = r * h
        n = torch.tanh(mm(rh, Wh, v_n))
        return torch.lerp(h, n, z), (h, rz, rh, n, Wh)

    @torch.no_grad()
    def backward(self, ctx, d_out: torch.Tensor):
        """Gradients of the input rows and of (Wrz, Wh, b) from the output's gradient ``d_out``."""
        h, rz, rh, n, Wh = ctx
        H = self.hidden
        r, z = rz.chunk(2, dim=-1)
        d_n = (d_out * z).mul_(1.0 - n * n)  # through tanh
        d_v = torch.empty(h.shape[:-1] + (3 * H,), dtype=h.dtype, device=h.device)
        d_v[..., :H] = d_n
        d_rz = d_v[..., H:]
        # d r (into a fresh tensor, then copied: mm with a strided ``out`` may round differently)
        d_rz[..., :H] = mm(d_n, Wh.mT).mul_(h)
        torch.mul(d_out, n - h, out=d_rz[..., H:])  # d z
        d_rz.mul_(rz * (1.0 - rz))  # through the sigmoid
        return d_v, [mm(h.mT, d_rz), mm(rh.mT, d_n), d_v.sum(-2)]


class GRULayer(nn.Module):
    """A GRU layer in the library form (PyTorch's GRUCell: reset after the recurrent product)."""

    def __init__(self, d_in: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.W_ih = nn.Parameter(uniform_init_(torch.zeros(3 * hidden, d_in), generator, 3, dim=0))
        self.W_hh = nn.Parameter(uniform_init_(torch.zeros(3 * hidden, hidden), generator, 3, dim=0))
        self.b_ih = nn.Parameter(torch.zeros(3 * hidden))
        self.b_hh = nn.Parameter(torch.zeros(3 * hidden))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.gru_cell(x, h, self.W_ih, self.W_hh, self.b_ih, self.b_hh)

    def weights(self) -> tuple:
        """The dense weights in the order :meth:`forward_train` takes them (and the gradients come)."""
        return self.W_ih, self.W_hh, self.b_ih, self.b_hh

    @torch.no_grad()
    def forward_train(self, x: torch.Tensor, h: torch.Tensor, w: tuple | None = None):
        """:meth:`forward` (as torch.gru_cell computes it) without autograd,
        keeping what :meth:`backward` needs. Gates r, z, n in that order:
        [r, z] = sigmoid(x W_i + b_i + h W_h + b_h) over the first two blocks,
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), h' = n + z * (h - n).
        ``w``: the weights (default :meth:`weights`); with a leading seed
        dimension on ``w``, ``x`` and ``h``, every seed at once."""
        W_ih, W_hh, b_ih, b_hh = self.weights() if w is None else w
        H = h.shape[-1]
        gi = mm(x, W_ih.mT, b_ih)
        gh = mm(h, W_hh.mT, b_hh)
        rz = torch.sigmoid(gi[..., :2 * H].add_(gh[..., :2 * H]))
        gh_n = gh[..., 2 * H:]
        n = torch.tanh(torch.addcmul(gi[..., 2 * H:], rz[..., :H], gh_n))
        return torch.addcmul(n, h - n, rz[..., H:]), (x, h, rz, gh_n, n, W_ih)

    @torch.no_grad()
    def backward(self, ctx, d_out: torch.Tensor):
        """Gradients of the input and of (W_ih, W_hh, b_ih, b_hh) from the output's gradient ``d_out``."""
        x, h, rz, gh_n, n, W_ih = ctx
        H = h.shape[-1]
        d_gi = torch.empty(h.shape[:-1] + (3 * H,), dtype=h.dtype, device=h.device)
        d_gh = torch.empty_like(d_gi)
        d_n = d_gi[..., 2 * H:]
        torch.mul(d_out, 1.0 - rz[..., H:], out=d_n).mul_(1.0 - n * n)  # through tanh
        torch.mul(d_n, rz[..., :H], out=d_gh[..., 2 * H:])
        d_rz = d_gi[..., :2 * H]
        torch.mul(d_n, gh_n, out=d_rz[..., :H])  # d r
        torch.mul(d_out, h - n, out=d_rz[..., H:])  # d z
        d_rz.mul_(rz * (1.0 - rz))  # through the sigmoid
        d_gh[..., :2 * H] = d_rz
        return mm(d_gi, W_ih), [mm(d_gi.mT, x), mm(d_gh.mT, h), d_gi.sum(-2), d_gh.sum(-2)]


class GRU4RecNet(nn.Module):
    """Input layer, GRU stack and item output of GRU4Rec."""

    def __init__(self, n_items: int, p: dict, generator: torch.Generator):
        super().__init__()
        layers = p["layers"]
        self.one_hot = not p["constrained_embedding"] and p["embedding"] == 0
        self.constrained = p["constrained_embedding"]
        if self.constrained:
            d_in = layers[-1]
        elif p["embedding"] > 0:
            self.E = _item_parameter((n_items, p["embedding"]), generator)
            d_in = p["embedding"]
        gru = []
        for i, hidden in enumerate(layers):
            if i == 0 and self.one_hot:
                gru.append(OneHotGRULayer(n_items, hidden, generator))
            else:
                gru.append(GRULayer(layers[i - 1] if i > 0 else d_in, hidden, generator))
        self.gru = nn.ModuleList(gru)
        self.Wy = _item_parameter((n_items, layers[-1]), generator)
        self.By = _item_parameter((n_items,))

    def input_matrix(self) -> torch.Tensor:
        """The item matrix whose rows are the input of the first layer."""
        if self.constrained:
            return self.Wy
        return self.gru[0].Wx if self.one_hot else self.E

    def item_matrices(self) -> dict[str, torch.Tensor]:
        names = {"Wy": self.Wy, "By": self.By}
        if not self.constrained:
            names["gru0.Wx" if self.one_hot else "E"] = self.input_matrix()
        return names

    def dense_parameters(self) -> dict[str, torch.Tensor]:
        return {f"gru{i}.{name}": p for i, layer in enumerate(self.gru)
                for name, p in layer.named_parameters() if p.requires_grad}

    def hidden_step(self, x, H):
        """Feed ``x`` (input-layer rows) through the GRU stack from states
        ``H``, without dropout (scoring; training: :func:`gru_train`)."""
        new_H = []
        for layer, h in zip(self.gru, H):
            x = layer(x, h)
            new_H.append(x)
        return x, new_H


M32 = 0xFFFFFFFF
#: xorshift-multiply rounds of :func:`mix32`; every multiplier is odd (a bijection
#: of 32-bit values) and below 2^31, so no product of a 32-bit value leaves int64
_MIX_ROUNDS = ((16, 0x7FEB352D), (15, 0x2C1B3C6D), (13, 0x297A2D39))
#: number of each dropout site in the mask hash (elements of site k are k * 2^24 + i)
SITE_SHIFT = 24


def mix32(x):
    """A bijective hash of 32-bit values (Python ints, or int64 tensors holding them).

    Integer arithmetic only, so a Python int, a CPU tensor and a CUDA tensor
    give the same bits: the dropout masks (:func:`dropout_mask`) are a pure
    function of (key, step, site, element), whether a step runs eagerly or as
    a CUDA graph's replay, alone or with other seeds.
    """
    if isinstance(x, int):
        for shift, mult in _MIX_ROUNDS:
            x ^= x >> shift
            x = (x * mult) & M32
        return x ^ (x >> 16)
    for shift, mult in _MIX_ROUNDS:
        x = x.bitwise_xor(x >> shift).mul_(mult).bitwise_and_(M32)
    return x.bitwise_xor_(x >> 16)


def step_key(key: int, step: int) -> int:
    """The dropout key of training step ``step`` of the stream ``key`` (counter-based: no state but the count)."""
    return mix32(key ^ mix32(step & M32))


_ELEMENTS: dict = {}


def dropout_mask(shape: tuple, site: int, dkey, p: float, cpu_kernel: bool = True) -> torch.Tensor:
    """The scaled dropout mask (0 or 1 / (1 - p), float32) of site number
    ``site`` for a tensor of ``shape`` (B, d), or (S, B, d) with one key per seed.

    ``dkey``: the step's key (:func:`step_key`), a Python int, a 0-d int64
    tensor or, with a seed dimension, an (S,) int64 tensor. Element ``i`` of
    the site is kept when the top 24 bits of ``mix32((site << 24 + i) ^ dkey)``
    fall below ``(1 - p) * 2^24``: a counter-based draw, the same on every
    device and in a CUDA graph (where a generator's state would be captured).
    On the CPU the same hash runs as one numba pass (cpu_kernels.dropout_masks;
    ``cpu_kernel=False``: the tensor operations a GPU runs).
    """
    n = shape[-2] * shape[-1]
    if n >= 1 << SITE_SHIFT:
        raise ValueError(f"dropout site of {n} elements: more than the mask hash numbers ({1 << SITE_SHIFT})")
    device = dkey.device if isinstance(dkey, torch.Tensor) else torch.device("cpu")
    threshold = int(round((1.0 - p) * (1 << SITE_SHIFT)))
    if device.type == "cpu" and cpu_kernel and cpu_kernels.AVAILABLE:  # one pass of the same hash (numba)
        keys = dkey.reshape(-1).numpy() if isinstance(dkey, torch.Tensor) else np.array([dkey], dtype=np.int64)
        out = np.empty((len(keys), n), dtype=np.float32)
        cpu_kernels.dropout_masks(out, keys, site << SITE_SHIFT, threshold, np.float32(1.0 / (1.0 - p)))
        return torch.from_numpy(out).view(shape)
    key = (site, n, device)
    elems = _ELEMENTS.get(key)
    if elems is None:
        elems = _ELEMENTS[key] = torch.arange(n, dtype=torch.int64, device=device) + (site << SITE_SHIFT)
    k = dkey.unsqueeze(-1) if isinstance(dkey, torch.Tensor) and dkey.dim() == 1 else dkey
    u = mix32(elems.bitwise_xor(k))
    keep = u.bitwise_right_shift_(8).lt_(threshold)
    return keep.view(shape).to(torch.float32).mul_(1.0 / (1.0 - p))


def site_number(site: str) -> int:
    """``embed`` -> 0, ``hidden{i}`` -> i + 1."""
    return 0 if site == "embed" else 1 + int(site[len("hidden"):])


@torch.no_grad()
def gru_train(layers, weights, x: torch.Tensor, H: list, mask_of):
    """The GRU stack of a training step without autograd (GRU4RecNet.hidden_step
    with dropout): ``weights`` per layer (None: the layer's own), ``mask_of(x,
    site)`` the dropout mask or None. Returns the output, the new states and
    what :func:`gru_backward` needs. Works with a leading seed dimension too."""
    embed_mask = None if isinstance(layers[0], OneHotGRULayer) else mask_of(x, "embed")
    if embed_mask is not None:
        x = x * embed_mask
    new_H, tape = [], []
    for i, (layer, w, h) in enumerate(zip(layers, weights, H)):
        x, ctx = layer.forward_train(x, h, w)
        mask = mask_of(x, f"hidden{i}")
        if mask is not None:
            x = x * mask
        new_H.append(x)
        tape.append((ctx, mask))
    return x, new_H, (embed_mask, tape)


@torch.no_grad()
def gru_backward(layers, saved, d_out: torch.Tensor):
    """Gradients of the dense weights (layer by layer, each in its ``weights()``
    order) and of the input rows, from the gradient of the GRU stack's output."""
    embed_mask, tape = saved
    grads = []
    for layer, (ctx, mask) in zip(reversed(layers), reversed(tape)):
        if mask is not None:
            d_out = d_out * mask
        d_out, g = layer.backward(ctx, d_out)
        grads = g + grads
    if embed_mask is not None:
        d_out = d_out * embed_mask
    return grads, d_out


def one_hot_sum(pos: torch.Tensor, src: torch.Tensor, n: int) -> torch.Tensor:
    """``out[..., k] = sum of src[..., j] over the j with pos[j] == k`` (``n``
    columns), as a product with a 0/1 matrix: a fixed order of summation on
    every device (``index_add_`` on a GPU adds repeated positions in no fixed
    order). ``pos``: (J,) or, with a seed dimension, (S, J)."""
    cols = torch.arange(n, device=pos.device)
    P = (pos.unsqueeze(-1) == cols).to(src.dtype)
    return mm(src, P)


def _as_index(idx, device) -> torch.Tensor:
    if isinstance(idx, torch.Tensor):
        return idx.to(device=device, dtype=torch.int64)
    return torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(device)


class GRU4Rec:
    """GRU4Rec with the low-level API of GRU4REC_API.md.

    ``support``: training event count of every item (sampling and logQ);
    ``None`` means uniform. ``device``: where the tensors live.
    """

    def __init__(self, n_items: int, params: dict, seed: int, support=None, device="cpu",
                 deterministic: bool | None = None):
        self.params = p = resolve_params(params)
        self.n_items = int(n_items)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.item_ids = np.arange(self.n_items, dtype=np.int64)
        support = np.ones(self.n_items) if support is None else np.asarray(support, dtype=np.float64)
        if support.shape != (self.n_items,) or (support <= 0).any():
            raise ValueError(f"support must hold a positive count for each of the {self.n_items} items")
        self.support = support
        # one seed, three independent streams: init, dropout, extra samples
        init_seed, dropout_seed, sample_seed = np.random.SeedSequence(self.seed).generate_state(3)
        init_gen = torch.Generator().manual_seed(int(init_seed))
        self.net = GRU4RecNet(self.n_items, p, init_gen).to(self.device)
        #: dropout masks are counter-based (:func:`dropout_mask`): the stream's key and the steps taken
        self.dropout_key = int(dropout_seed) & M32
        self.dropout_step = 0
        #: sums over repeated rows in a fixed order (:func:`one_hot_sum`) instead of
        #: ``index_add_``; None: when on a GPU with ``torch.use_deterministic_algorithms``
        self.deterministic = deterministic
        self.sample_rng = np.random.default_rng(int(sample_seed))
        self.store = (SampleStore(support, p["sample_alpha"], p["n_sample"], p["sample_store_size"],
                                  self.sample_rng, self.device) if p["n_sample"] > 0 else None)
        self.log_support = torch.tensor(np.log(support), dtype=torch.float32, device=self.device)
        self.item_params = self.net.item_matrices()
        self.dense_params = self.net.dense_parameters()
        #: dropout probability of each site; ``dropout_mask_fn(site, shape)``, when
        #: set, supplies the (already scaled) masks instead (GRU4REC_API.md)
        self.dropout_p = dropout_rates(p)
        self.has_dropout = any(v > 0 for v in self.dropout_p.values())
        if self.has_dropout and self.device.type == "cpu":
            cpu_kernels.warm_up("masks")  # loaded now, not in the first step (cpu_kernels.warm_up)
        self.dropout_mask_fn = None
        self.optimizer = SparseAdagradMomentum({**self.item_params, **self.dense_params},
                                               p["learning_rate"], p["momentum"], dense=tuple(self.dense_params))
        self.loss_shape = ()  # of the loss sum _step returns (SeedsTogether: one per seed)
        self.H = self.zero_state(p["batch_size"])
        self._input_name = "Wy" if self.net.constrained else ("gru0.Wx" if self.net.one_hot else "E")
        self._slot = torch.zeros(self.n_items, dtype=torch.int64, device=self.device)  # see _first_entries
        self._arange = torch.arange(0, device=self.device)
        # logQ correction per item: logq * log(support) as a target, times sample_alpha as an extra sample
        self._logq_shift = None
        if p["loss"] == "cross-entropy" and p["logq"] > 0:
            self._logq_shift = (p["logq"] * self.log_support, (p["logq"] * p["sample_alpha"]) * self.log_support)

    # ----------------------------------------------------------------- state
    def zero_state(self, lanes: int) -> list[torch.Tensor]:
        return [torch.zeros(lanes, h, device=self.device) for h in self.params["layers"]]

    def reset_lanes(self, mask) -> None:
        """Zero the hidden state of the lanes where ``mask`` is true."""
        mask = torch.as_tensor(np.asarray(mask, dtype=bool) if not isinstance(mask, torch.Tensor) else mask,
                               device=self.device).unsqueeze(1)
        self.H = [h.masked_fill(mask, 0.0) for h in self.H]

    def keep_lanes(self, idx) -> None:
        """Keep only lanes ``idx`` (the batch shrinks)."""
        idx = _as_index(idx, self.device)
        self.H = [h.index_select(0, idx) for h in self.H]

    # -------------------------------------------------------------- training
    def next_dropout_key(self):
        """The dropout key of the next training step (a Python int; None without
        dropout); advances the step count (:func:`step_key`)."""
        step = self.dropout_step
        self.dropout_step += 1
        return step_key(self.dropout_key, step) if self.has_dropout else None

    def _mask_of(self, dkey):
        """``mask_of(x, site)`` of :func:`gru_train` for the step whose key is ``dkey``."""
        def mask_of(x: torch.Tensor, site: str) -> torch.Tensor | None:
            p = self.dropout_p[site]
            if p == 0.0:
                return None
            if self.dropout_mask_fn is not None:  # test hook (GRU4REC_API.md): the mask comes from outside
                mask = np.asarray(self.dropout_mask_fn(site, tuple(x.shape)), dtype=np.float32)
                return torch.from_numpy(mask).to(self.device)
            if isinstance(dkey, int) and self.device.type != "cpu":
                return dropout_mask(tuple(x.shape), site_number(site), torch.tensor(dkey, device=self.device), p)
            return dropout_mask(tuple(x.shape), site_number(site), dkey, p)
        return mask_of

    def fixed_order(self) -> bool:
        """Whether repeated rows are summed in a fixed order (see ``deterministic``)."""
        if self.deterministic is not None:
            return self.deterministic
        return self.device.type != "cpu" and torch.are_deterministic_algorithms_enabled()

    def _first_entries(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each entry of ``idx``, the position ``pos`` of one entry chosen
        to represent its value (the same for all entries of that value), and
        ``first``: whether the entry is that representative. Fixed size, no
        sort and no host synchronisation: every entry writes its position into
        a per-item slot table and reads back whichever position stayed there."""
        k = idx.shape[0]
        if self._arange.shape[0] < k:
            self._arange = torch.arange(k, device=self.device)
        ar = self._arange[:k]
        self._slot.index_copy_(0, idx, ar)
        pos = self._slot.index_select(0, idx)
        return pos, pos == ar

    def _step(self, in_idx: torch.Tensor, out_idx: torch.Tensor, neg_idx: torch.Tensor | None,
              dkey=None) -> torch.Tensor:
        """One training step on index tensors (on the device); returns the SUM
        of the per-row losses (a 0-d tensor: nothing here waits for the device).

        Differentiated by hand, without an autograd graph: R = h . Wy[y]^T +
        By[y] over the columns y = [targets, extra samples], the loss's
        gradient dR in closed form (losses.loss_and_grad), then dh = dR . Wy[y],
        dWy[y] = dR^T . h, dBy[y] = column sums of dR, and the GRU stack's
        backward pass (each layer's ``backward``, through the dropout masks).
        The gradients of a row used by several entries are summed onto one
        representative entry (_first_entries), which alone updates that row
        (optim.step_entries). ``dkey``: the step's dropout key (:meth:`next_dropout_key`).
        """
        p, net, opt = self.params, self.net, self.optimizer
        B = in_idx.shape[0]
        y = out_idx if neg_idx is None else torch.cat([out_idx, neg_idx])
        wy = net.Wy.index_select(0, y)
        by = net.By.index_select(0, y)
        x = self.item_params[self._input_name].index_select(0, in_idx)

        hd, new_H, saved = gru_train(net.gru, [None] * len(net.gru), x, self.H, self._mask_of(dkey))
        shift = None
        if self._logq_shift is not None:  # logq * log q of each column: targets, then extra samples
            target_shift, sample_shift = self._logq_shift
            shift = target_shift.index_select(0, out_idx)
            if neg_idx is not None:
                shift = torch.cat([shift, sample_shift.index_select(0, neg_idx)])
            if p["final_act"] == "linear":  # R - shift = h . Wy[y]^T + (By[y] - shift): one pass less
                by, shift = by - shift, None
        R = mm(hd, wy.t(), by)
        rows_loss, dR = losses.loss_and_grad(p["loss"], R, p["final_act"], p["elu_param"], p["bpreg"], shift,
                                             1.0 / p["batch_size"])
        dh = mm(dR, wy)
        grads, g_x = gru_backward(net.gru, saved, dh)
        opt.step_dense_all(grads)

        # the output rows (and, constrained, the input rows: the same matrix);
        # the columns of dR that share a row are summed first (a small scatter),
        # so the matrix product gives each row's whole gradient once
        idx = torch.cat([in_idx, y]) if net.constrained else y
        off = B if net.constrained else 0
        pos, first = self._first_entries(idx)
        y_pos = pos[off:]
        fixed = self.fixed_order()
        if fixed:
            dR_rows = one_hot_sum(y_pos, dR, idx.shape[0])
        else:
            dR_rows = torch.zeros(B, idx.shape[0], device=self.device).index_add_(1, y_pos, dR)
        g = mm(dR_rows.t(), hd)
        if net.constrained:
            if fixed:
                g += one_hot_sum(pos[:B], g_x.t(), idx.shape[0]).t()
            else:
                g.index_add_(0, pos[:B], g_x)
        gb = dR_rows.sum(0)
        # By has a gradient only on rows of y (input-only rows keep their bias and its momentum)
        b_mask = (torch.zeros(idx.shape[0], dtype=torch.bool, device=self.device).index_fill_(0, y_pos, True)
                  if net.constrained else first)
        opt.step_entries("Wy", idx, g, first)
        opt.step_entries("By", idx, gb, b_mask)
        if not net.constrained:
            pos, first = self._first_entries(in_idx)
            if fixed:
                g = one_hot_sum(pos, g_x.t(), B).t().contiguous()
            else:
                g = torch.zeros_like(x).index_add_(0, pos, g_x)
            opt.step_entries(self._input_name, in_idx, g, first)
        self.H = new_H
        return rows_loss.sum()

    def train_step(self, in_idx, out_idx, neg_idx=None) -> float:
        """One mini-batch; returns the loss (summed over lanes / nominal batch size)."""
        neg = None if neg_idx is None or len(neg_idx) == 0 else _as_index(neg_idx, self.device)
        loss_sum = self._step(_as_index(in_idx, self.device), _as_index(out_idx, self.device), neg,
                              self.next_dropout_key())
        return float(loss_sum) / self.params["batch_size"]

    def next_negatives(self) -> torch.Tensor | None:
        """The extra negatives of the next mini-batch from the sample store."""
        return None if self.store is None else self.store.next()

    # ------------------------------------------------------------ evaluation
    def score(self, in_idx) -> np.ndarray:
        """Raw scores h . Wy^T + By of all items after feeding ``in_idx`` (no
        dropout, no final activation), advancing the hidden state; numpy (B, n_items)."""
        return self.score_tensor(in_idx).cpu().numpy()

    @torch.no_grad()
    def score_tensor(self, in_idx) -> torch.Tensor:
        """:meth:`score`, left on the device."""
        in_idx = _as_index(in_idx, self.device)
        x = self.net.input_matrix().index_select(0, in_idx)
        h, self.H = self.net.hidden_step(x, self.H)
        return torch.addmm(self.net.By, h, self.net.Wy.t())

    @torch.no_grad()
    def evaluate(self, test: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
        """The rank record (gru4rec_repro.contract.RANK_COLUMNS) of ``test``.

        ``eval_batch_size`` sessions run in parallel lanes, each from a zero
        state; every event but a session's last is scored against all items.
        Items unseen in training are dropped from ``test`` first.
        """
        from tqdm.auto import tqdm

        data = session_data(test, self.item_ids, "test split")
        saved_H = self.H
        self.H = self.zero_state(min(self.params["eval_batch_size"], max(data.n_sessions, 1)))
        parts = []
        n_pred = int(data.n_events - data.n_sessions)
        bar = tqdm(total=n_pred, disable=not progress, desc="evaluate", unit="ev", mininterval=2)
        steps = list(session_parallel(data, self.params["eval_batch_size"], with_positions=True))
        # every step's indices, reset flags and kept lanes go to the device at once: the loop
        # below makes no host-device copy and waits for nothing (one read-back at the end)
        dev = self.device
        flat = {k: torch.from_numpy(np.concatenate([np.zeros(0, dt)] + v)).to(dev) for k, v, dt in (
            ("in", [st.in_idx for st in steps], np.int64), ("out", [st.out_idx for st in steps], np.int64),
            ("reset", [st.reset for st in steps if st.reset is not None], bool),
            ("keep", [st.keep for st in steps if st.keep is not None], np.int64))}
        at = dict.fromkeys(flat, 0)

        def take(key, n):
            at[key] += n
            return flat[key][at[key] - n:at[key]]
        for step in steps:
            if step.keep is not None:
                self.keep_lanes(take("keep", len(step.keep)))
            if step.reset is not None:
                self.reset_lanes(take("reset", len(step.reset)))
            n = len(step.in_idx)
            scores = self.score_tensor(take("in", n))
            t = scores.gather(1, take("out", n).unsqueeze(1))
            higher = (scores > t).sum(1)
            ties = (scores == t).sum(1) - 1
            parts.append((step.session, step.position, step.out_idx, higher, ties))
            bar.update(n)
        bar.close()
        self.H = saved_H
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in
                                 (("session_id", "int64"), ("position", "int32"), ("target", "int64"),
                                  ("higher", "int64"), ("ties", "int64"))})
        return pd.DataFrame({
            "session_id": data.session_ids[np.concatenate([s for s, *_ in parts])].astype(np.int64),
            "position": np.concatenate([q for _, q, *_ in parts]).astype(np.int32),
            "target": self.item_ids[np.concatenate([o for _, _, o, _, _ in parts])].astype(np.int64),
            "higher": torch.cat([h for *_, h, _ in parts]).cpu().numpy().astype(np.int64),
            "ties": torch.cat([t for *_, t in parts]).cpu().numpy().astype(np.int64),
        })

    # ----------------------------------------------------------- persistence
    def neutral_weights(self) -> dict[str, np.ndarray]:
        """The tensors of the neutral weights file, by their documented names."""
        out = {}
        for name, t in self.net.named_parameters():
            name = name.replace("gru.", "gru", 1)  # "gru.0.W_ih" -> "gru0.W_ih"
            out[name] = t.detach().cpu().numpy().astype(np.float32)
        return out

    def save_weights(self, path) -> None:
        """Write the neutral ``weights.npz`` (GRU4REC_API.md) to ``path``."""
        from gru4rec_repro.atomic import atomic_path

        meta = {"layers": self.params["layers"], "embedding": self.params["embedding"],
                "constrained_embedding": self.params["constrained_embedding"], "format": 1}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, item_ids=self.item_ids.astype(np.int64), meta=np.array(json.dumps(meta)),
                         **self.neutral_weights())

    def load_weights(self, path) -> None:
        """Read a neutral ``weights.npz`` written by either implementation."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            for key in ("layers", "constrained_embedding"):
                if meta[key] != self.params[key]:
                    raise ValueError(f"{path}: {key} is {meta[key]!r}, this model has {self.params[key]!r}")
            if not np.array_equal(z["item_ids"], self.item_ids):
                raise ValueError(f"{path}: item index differs from this model's ({len(z['item_ids'])} vs "
                                 f"{len(self.item_ids)} items)")
            expected = self.neutral_weights()
            missing = sorted(set(expected) - set(z.files))
            if missing:
                raise ValueError(f"{path}: missing tensor(s) {missing}")
            params = dict(self.net.named_parameters())
            with torch.no_grad():
                for name, old in expected.items():
                    if z[name].shape != old.shape:
                        raise ValueError(f"{path}: {name} has shape {z[name].shape}, expected {old.shape}")
                    params[name.replace("gru", "gru.", 1)].copy_(torch.from_numpy(z[name]))

    def state_dict(self) -> dict:
        """Everything a checkpoint needs to continue training exactly."""
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "dropout_step": self.dropout_step,
                "sample_rng": self.sample_rng.bit_generator.state,
                "store": None if self.store is None else self.store.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.dropout_step = int(state["dropout_step"])
        self.sample_rng.bit_generator.state = state["sample_rng"]
        if self.store is not None:
            self.store.load_state_dict(state["store"])
