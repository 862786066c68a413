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

It runs the eager step's kernels on the same tensors. The dropout masks are
counter-based (``model.dropout_mask``: a hash of the seed's key, the step,
the site and the element), and each step's key travels in the input buffer,
so a replay draws exactly the eager step's masks. The same runner takes a
seeds.SeedsTogether (all seeds of a run in one graph). With
``deterministic`` (or ``torch.use_deterministic_algorithms``) repeated rows
are summed in a fixed order (``model.one_hot_sum``) instead of by
``index_add_``, which on a GPU adds in no fixed order.
:func:`graph_against_eager` (``benchmarks/gpu_check.py``, the CUDA tests)
trains both ways from one seed and asks for float32 tolerance; a CPU test
replays the captured body in place of the graph against the eager steps, bit
for bit.

Where a graph cannot be used, the step runs eagerly: on the CPU;
with an injected dropout mask (a test hook, ``dropout_mask_fn``);
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
        self.lanes = model.H[0].shape[-2]  # (lanes, hidden), or (seeds, lanes, hidden) seeds together
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


def _weights(model) -> torch.Tensor:
    """Every weight of a GRU4Rec or of each seed of a seeds.SeedsTogether, as one vector."""
    models = getattr(model, "models", [model])
    return torch.cat([t.detach().reshape(-1) for m in models for t in m.net.parameters()])


#: float32 tolerance of :func:`graph_against_eager`: relative on the loss sums,
#: (rtol, atol) on the weights
LOSS_RTOL, WEIGHT_RTOL, WEIGHT_ATOL = 1e-6, 1e-5, 1e-6


def graph_against_eager(make_model, data, n_steps: int | None = None, deterministic: bool = True) -> dict:
    """The check of a graph on a GPU (tests/test_gru4rec_torch_cuda.py,
    benchmarks/gpu_check.py): train ``n_steps`` mini-batches of ``data`` (None:
    one epoch) from ``make_model()`` (a fresh GRU4Rec or seeds.SeedsTogether,
    the same seeds each call) eagerly twice and as graph replays once, with
    repeated rows summed in a fixed order (``deterministic``, one_hot_sum).

    Returns the three loss sums (``eager``, ``again``, ``graph``; summed over
    the seeds), the largest weight difference of the second eager run and of
    the graph to the first (``spread``, ``diff``), ``captured`` (the graph
    ran; else ``failure`` says why), ``finite`` (every run's weights),
    ``reproducible`` (the two eager runs agree bit for bit) and ``same``: the
    graph's loss sum within ``LOSS_RTOL`` of the eager one and every weight
    within float32 tolerance (``WEIGHT_RTOL``, ``WEIGHT_ATOL``). The replays
    draw the eager steps' dropout masks (counter-based, model.dropout_mask) and
    run the eager steps' kernels, so a frozen mask, a stale input buffer or a
    state not handed over fails it.
    """
    from .data import session_parallel

    sums, weights = [], []
    out = {"captured": False, "failure": None}
    for runner in (EagerSteps, EagerSteps, GraphedSteps):
        model = make_model()
        if deterministic:
            model.deterministic = True
        p = model.params
        model.H = model.zero_state(min(p["batch_size"], data.n_sessions))
        loss_sum = torch.zeros(model.loss_shape, device=model.device)
        run = runner(model, loss_sum)
        for i, step in enumerate(session_parallel(data, p["batch_size"], min_lanes=2 if p["n_sample"] == 0 else 1)):
            if i == n_steps:
                break
            run(step, model.next_negatives())
        run.finish()
        if runner is GraphedSteps:
            out.update(captured=run.graph is not None and run.failed is None, failure=run.failed)
        sums.append(float(loss_sum.sum()))
        weights.append(_weights(model))
    (eager, again, graph), (w0, w1, wg) = sums, weights
    out.update(eager=eager, again=again, graph=graph,
               spread=(w1 - w0).abs().max().item(), diff=(wg - w0).abs().max().item(),
               finite=all(bool(torch.isfinite(w).all()) for w in weights),
               reproducible=eager == again and bool(torch.equal(w0, w1)),
               same=abs(graph - eager) <= LOSS_RTOL * abs(eager)
               and bool(torch.allclose(wg, w0, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)))
    return out


def time_steps(model, data, n_steps: int = 1000, warmup: int = 50) -> dict:
    """Time ``n_steps`` training mini-batches of ``data`` after ``warmup`` ones
    (the graph is captured within the warm-up), run as training runs them
    (:func:`step_runner`: graph replays on a GPU). ``model``: a GRU4Rec or a
    seeds.SeedsTogether. Returns ``steps``, ``seconds`` (wall), ``events`` (per
    seed), ``events_per_s`` (per seed), ``seed_events_per_s`` (times the seeds),
    ``mbatches_per_s``, ``cpu_seconds`` of this process, ``seeds`` and
    ``graph`` (whether graph replays ran). Starts from a zero state; the
    epoch's end is not reached when ``data`` has enough sessions."""
    import time

    from .data import session_parallel

    p, dev = model.params, model.device
    model.H = model.zero_state(min(p["batch_size"], data.n_sessions))
    loss_sum = torch.zeros(model.loss_shape, device=dev)
    run = step_runner(model, loss_sum)
    events = done = 0
    t0 = c0 = None
    for i, step in enumerate(session_parallel(data, p["batch_size"], min_lanes=2 if p["n_sample"] == 0 else 1)):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0, c0, events = time.perf_counter(), time.process_time(), 0
        if i == warmup + n_steps:
            break
        run(step, model.next_negatives())
        events += len(step.in_idx)
        done = i + 1 - warmup
    float(loss_sum.sum())  # waits for the device
    if t0 is None:
        raise ValueError(f"time_steps: data has fewer than {warmup} warm-up mini-batches")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    run.finish()
    seeds = getattr(model, "n_seeds", 1)
    return {"steps": done, "seconds": seconds, "events": events, "events_per_s": events / seconds,
            "seed_events_per_s": seeds * events / seconds, "mbatches_per_s": done / seconds, "cpu_seconds": cpu,
            "seeds": seeds, "graph": isinstance(run, GraphedSteps) and run.graph is not None and run.failed is None}


def graphs_enabled() -> bool:
    return os.environ.get("GRU4REC_TORCH_CUDA_GRAPH", "1") not in ("0", "false", "no", "off")


def step_runner(model: GRU4Rec, loss_sum: torch.Tensor) -> EagerSteps:
    """The way to run this model's training steps (see the module)."""
    if model.device.type == "cuda" and graphs_enabled() and model.dropout_mask_fn is None:
        return GraphedSteps(model, loss_sum)
    return EagerSteps(model, loss_sum)
