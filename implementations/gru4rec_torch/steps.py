"""Running training steps: one by one, or replayed as a CUDA graph on a GPU.

At batch 32 a training step is a hundred-odd small kernels. Launched one by
one from Python, the GPU waits for the CPU between them: on an H100 the eager
step ran at 355-526 mini-batches/s (benchmarks/README.md), about what one CPU
core gives. :class:`GraphedSteps` captures the whole step (reset of the
finished lanes, forward pass, hand-written backward pass, every optimizer
update, the loss sum) once per epoch as a CUDA graph and replays it for every
mini-batch of the same width, with the step's inputs copied into fixed device
buffers first (one host-to-device copy of the batch's indices and reset
flags, one device copy of the extra samples): 3,674 mini-batches/s
(cross-entropy) on the same H100.

It runs the eager step's kernels on the same tensors; the dropout generator
is registered with the graph, so each replay draws fresh masks from it.
``benchmarks/gpu_check.py`` trains both ways from one seed and compares
(on the H100: the graph within the spread of two eager runs, which differ
because ``index_add_`` on a GPU adds in no fixed order); a CPU test replays
the captured body in place of the graph against the eager steps, bit for bit.

Where a graph cannot be used, the step runs eagerly: on the CPU;
with an injected dropout mask (a test hook);
for the few mini-batches of an epoch's end where the batch has shrunk; and
everywhere when ``GRU4REC_TORCH_CUDA_GRAPH=0``.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from .data import Step
from .model import GRU4Rec

log = logging.getLogger("gru4rec_torch")

#: eager steps before the capture (lazy initialisations happen outside it)
WARMUP_STEPS = 3


class EagerSteps:
    """Feeds each :class:`data.Step` to the model, one kernel at a time.

    ``loss_sum``: a 0-d tensor on the model's device to which every step
    adds the sum of its rows' losses (nothing here waits for the device).
    """

    def __init__(self, model: GRU4Rec, loss_sum: torch.Tensor):
        self.model = model
        self.loss_sum = loss_sum

    def __call__(self, step: Step, negatives: torch.Tensor | None) -> None:
        m, dev = self.model, self.model.device
        if step.keep is not None:
            m.keep_lanes(step.keep)
        if step.reset is not None:
            m.reset_lanes(step.reset)
        in_idx = torch.from_numpy(step.in_idx).to(dev, non_blocking=True)
        out_idx = torch.from_numpy(step.out_idx).to(dev, non_blocking=True)
        self.loss_sum += m._step(in_idx, out_idx, negatives, m.next_dropout_key())

    def finish(self) -> None:
        """Leave ``model.H`` holding the state after the last step."""


class GraphedSteps(EagerSteps):
    """:class:`EagerSteps` with the step captured as a CUDA graph (see the module)."""

    def __init__(self, model: GRU4Rec, loss_sum: torch.Tensor):
        super().__init__(model, loss_sum)
        self.lanes = model.H[0].shape[0]
        dev = model.device
        # one buffer for the step's host inputs: input items, targets, 1 where the lane
        # resets, and the dropout key of each seed (model.next_dropout_key, dropout_mask)
        self._keys = getattr(model, "n_seeds", 1) if model.has_dropout else 0
        self._host = np.zeros(3 * self.lanes + self._keys, dtype=np.int64)
        self._inputs = torch.zeros(3 * self.lanes + self._keys, dtype=torch.int64, device=dev)
        self._negatives = None  # made at the first step, shaped as the model's negatives
        self._H = None  # the graph's hidden-state buffers (made at the capture, read by every replay)
        self._in_graph = False  # whether the current state is in _H (graph) or model.H (eager)
        self.graph = None
        self.eager_steps = 0
        self.failed = None
        self._side = None  # the warm-up steps' stream

    def _body(self) -> None:
        """The captured step: reads the fixed input buffers and ``_H``, writes ``_H`` and the loss sum."""
        m, B = self.model, self.lanes
        in_idx, out_idx = self._inputs[:B], self._inputs[B:2 * B]
        reset = (self._inputs[2 * B:3 * B] != 0).unsqueeze(1)  # (B, 1): broadcasts over a seed dimension too
        dkey = None
        if self._keys:
            dkey = self._inputs[3 * B:] if getattr(m, "n_seeds", None) is not None else self._inputs[3 * B]
        m.H = [h.masked_fill(reset, 0.0) for h in self._H]
        self.loss_sum += m._step(in_idx, out_idx, self._negatives, dkey)
        for dst, src in zip(self._H, m.H):
            dst.copy_(src)

    def _load(self, step: Step, negatives: torch.Tensor | None) -> None:
        B = self.lanes
        self._host[:B] = step.in_idx
        self._host[B:2 * B] = step.out_idx
        self._host[2 * B:3 * B] = 0 if step.reset is None else step.reset
        if self._keys:
            self._host[3 * B:] = self.model.next_dropout_key()
        # pageable memory: the call returns once the buffer is staged, so it can be refilled
        self._inputs.copy_(torch.from_numpy(self._host), non_blocking=True)
        if negatives is not None:
            self._negatives.copy_(negatives, non_blocking=True)

    def _warmup(self, step: Step, negatives: torch.Tensor | None) -> None:
        """An eager step on a side stream, as PyTorch asks before a capture."""
        dev = self.model.device
        if self._side is None:
            self._side = torch.cuda.Stream(dev)
        self._side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(self._side):
            EagerSteps.__call__(self, step, negatives)
        torch.cuda.current_stream(dev).wait_stream(self._side)

    def _capture(self) -> None:
        """Record :meth:`_body` as ``self.graph`` (nothing runs until its ``replay``)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        self.graph = graph

    def __call__(self, step: Step, negatives: torch.Tensor | None) -> None:
        m = self.model
        if self.failed is not None or step.keep is not None or len(step.in_idx) != self.lanes:
            self.finish()
            return super().__call__(step, negatives)
        if self.graph is None:
            if self.eager_steps < WARMUP_STEPS:  # lazy initialisations (cuBLAS, caches) happen here
                self.eager_steps += 1
                return self._warmup(step, negatives)
            self._H = [h.clone() for h in m.H]
            if negatives is not None:  # the graph reads this buffer: made before the capture
                self._negatives = torch.empty_like(negatives)
            try:
                self._capture()
            except Exception as err:  # no graph: every step eager from here (said once in the log)
                self.failed = err
                log.warning("gru4rec_torch: CUDA graph capture failed (%s: %s); training eagerly",
                            type(err).__name__, err)
                m.H, self._H = self._H, None
                return super().__call__(step, negatives)
            self._in_graph = True
        elif not self._in_graph:  # the state comes back from eager steps into the graph's buffers
            for dst, src in zip(self._H, m.H):
                dst.copy_(src)
            self._in_graph = True
        self._load(step, negatives)
        self.graph.replay()

    def finish(self) -> None:
        """Hand the graph's state back to ``model.H`` (before eager steps, and at the epoch's end)."""
        if self._in_graph:
            self.model.H = [h.clone() for h in self._H]
            self._in_graph = False


def graph_against_eager(make_model, data, n_steps: int | None = None) -> dict:
    """The check of a graph on a GPU (tests/test_gru4rec_torch_cuda.py,
    benchmarks/gpu_check.py): train ``n_steps`` mini-batches of ``data`` (None:
    one epoch) from ``make_model()`` (a fresh model, the same seed each call)
    eagerly twice and as graph replays once.

    Returns the three loss sums (``eager``, ``again``, ``graph``), the largest
    weight difference of the second eager run and of the graph to the first
    (``spread``, ``diff``), ``captured`` (the graph ran; else ``failure``
    says why), ``finite`` (every run's weights) and ``same``: the graph's loss
    sum lies within 10 times the two eager runs' difference, or within 0.1%.
    (Two eager runs differ: ``index_add_`` on a GPU sums repeated rows in no
    fixed order, and Adagrad's first steps, about ``lr`` whatever the
    gradient, turn that rounding into large single-weight differences; so the
    loss sums decide, and the weight differences are only reported.)
    """
    from .data import session_parallel

    sums, weights = [], []
    out = {"captured": False, "failure": None}
    for runner in (EagerSteps, EagerSteps, GraphedSteps):
        model = make_model()
        p = model.params
        model.H = model.zero_state(min(p["batch_size"], data.n_sessions))
        loss_sum = torch.zeros((), device=model.device)
        run = runner(model, loss_sum)
        for i, step in enumerate(session_parallel(data, p["batch_size"], min_lanes=2 if p["n_sample"] == 0 else 1)):
            if i == n_steps:
                break
            run(step, model.next_negatives())
        run.finish()
        if runner is GraphedSteps:
            out.update(captured=run.graph is not None and run.failed is None, failure=run.failed)
        sums.append(float(loss_sum))
        weights.append(torch.cat([t.detach().reshape(-1) for t in model.net.parameters()]))
    (eager, again, graph), (w0, w1, wg) = sums, weights
    out.update(eager=eager, again=again, graph=graph,
               spread=(w1 - w0).abs().max().item(), diff=(wg - w0).abs().max().item(),
               finite=all(bool(torch.isfinite(w).all()) for w in weights),
               same=abs(graph - eager) <= max(10 * abs(again - eager), 1e-3 * abs(eager)))
    return out


def graphs_enabled() -> bool:
    return os.environ.get("GRU4REC_TORCH_CUDA_GRAPH", "1") not in ("0", "false", "no", "off")


def step_runner(model: GRU4Rec, loss_sum: torch.Tensor) -> EagerSteps:
    """The way to run this model's training steps (see the module)."""
    if model.device.type == "cuda" and graphs_enabled() and model.dropout_mask_fn is None:
        return GraphedSteps(model, loss_sum)
    return EagerSteps(model, loss_sum)
