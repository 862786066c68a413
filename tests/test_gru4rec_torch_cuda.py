"""gru4rec_torch on a CUDA device: the training step replayed as a CUDA graph.

These run only where torch sees a GPU (CI has none: they skip and say so).
benchmarks/gpu_check.py makes the same checks at RSC15 scale and times them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from implementations.gru4rec_torch.data import item_index, session_data, session_parallel
from implementations.gru4rec_torch.model import GRU4Rec
from implementations.gru4rec_torch.steps import GraphedSteps, graph_against_eager, step_runner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device visible to torch: the CUDA-graph tests need one")


def _sessions(n_sessions=400, n_items=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for j in range(int(rng.integers(2, 8))):
            rows.append((s, int(rng.integers(n_items)), float(s * 100 + j)))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def test_a_registered_generator_draws_fresh_masks_on_every_replay():
    """What the dropout of a replayed step rests on: each replay draws anew
    from the generator (a mask frozen at capture would repeat)."""
    gen = torch.Generator(device="cuda").manual_seed(7)
    x = torch.empty(64, 100, device="cuda")
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(gen)
    with torch.cuda.graph(graph):
        x.bernoulli_(0.6, generator=gen)
    replays = []
    for _ in range(3):
        graph.replay()
        replays.append(x.clone())
    for i in range(3):
        assert 0.55 < replays[i].mean().item() < 0.65
        for j in range(i):
            assert not torch.equal(replays[i], replays[j])


@pytest.mark.parametrize("params", [
    dict(loss="bpr-max", n_sample=32, elu_param=0.5, dropout_p_hidden=0.0, momentum=0.1),
    dict(loss="cross-entropy", n_sample=32, logq=1.0, sample_alpha=0.5, dropout_p_hidden=0.3),
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
         dropout_p_hidden=0.5, batch_size=16),
])
def test_an_epoch_of_graph_replays_trains_as_the_eager_steps(params):
    df = _sessions()
    item_ids = item_index(df)
    data = session_data(df, item_ids)
    support = np.bincount(data.items, minlength=len(item_ids)) + 1
    p = {"layers": [16], "batch_size": 8, "learning_rate": 0.05, **params}
    r = graph_against_eager(lambda: GRU4Rec(len(item_ids), p, seed=1, support=support, device="cuda"), data)
    assert r["captured"], r["failure"]
    assert r["finite"]
    # the same kernels; but index_add_ on a GPU sums repeated rows in no fixed
    # order, so two eager runs may differ too: the graph must stay within that
    assert r["same"], r


def test_the_training_loop_uses_the_graph_on_a_gpu():
    model = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=4), seed=0, device="cuda")
    assert type(step_runner(model, torch.zeros((), device="cuda"))) is GraphedSteps
