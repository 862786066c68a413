"""gru4rec_torch on a CUDA device: the training step replayed as a CUDA graph.

These run only where torch sees a GPU (CI has none: they skip and say so).
benchmarks/gpu_check.py makes the same checks at RSC15 scale and times them.
The CPU side of each (the captured body replayed by calling it, the
counter-based masks, seeds together) is tested in tests/test_gru4rec_torch.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from implementations.gru4rec_torch.data import item_index, session_data
from implementations.gru4rec_torch.model import GRU4Rec, dropout_mask, step_key
from implementations.gru4rec_torch.seeds import SeedsTogether
from implementations.gru4rec_torch.steps import GraphedSteps, graph_against_eager, step_runner, time_steps

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device visible to torch: the CUDA-graph tests need one")


def _sessions(n_sessions=400, n_items=60, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        for j in range(int(rng.integers(2, 8))):
            rows.append((s, int(rng.integers(n_items)), float(s * 100 + j)))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def _factory(params, seeds=(1,), n_sessions=400):
    df = _sessions(n_sessions)
    item_ids = item_index(df)
    data = session_data(df, item_ids)
    support = np.bincount(data.items, minlength=len(item_ids)) + 1
    p = {"layers": [16], "batch_size": 8, "learning_rate": 0.05, **params}

    def make():
        models = [GRU4Rec(len(item_ids), p, seed=s, support=support, device="cuda") for s in seeds]
        return SeedsTogether(models) if len(models) > 1 else models[0]
    return make, data, df


def test_replayed_masks_are_the_eager_masks_on_the_cpu_and_the_gpu():
    """A graph that draws a mask from a key in a buffer gives, replay by
    replay, the eager mask of that key, the same bits as on the CPU."""
    keys = torch.zeros(3, dtype=torch.int64, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = dropout_mask((3, 64, 100), 1, keys, 0.4)
    for step in range(3):
        k = [step_key(seed, step) for seed in (7, 8, 9)]
        keys.copy_(torch.tensor(k))
        graph.replay()
        assert torch.equal(out.cpu(), dropout_mask((3, 64, 100), 1, torch.tensor(k), 0.4))


SETTINGS = [
    dict(loss="bpr-max", n_sample=32, elu_param=0.5, dropout_p_hidden=0.0, momentum=0.1),
    dict(loss="cross-entropy", n_sample=32, logq=1.0, sample_alpha=0.5, dropout_p_hidden=0.3),
    # the 2016 one-hot settings: no extra samples, dropout after the GRU, 100 and 1000 units
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
         dropout_p_hidden=0.5, onehot_dropout="hidden", batch_size=16),
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
         dropout_p_hidden=0.5, onehot_dropout="hidden", batch_size=16, layers=[1000]),
]


@pytest.mark.parametrize("seeds", [(1,), (1, 2, 3)], ids=["alone", "together"])
@pytest.mark.parametrize("params", SETTINGS)
def test_an_epoch_of_graph_replays_trains_as_the_eager_steps(params, seeds):
    r = graph_against_eager(_factory(params, seeds)[0], _factory(params, seeds)[1])
    assert r["captured"], r["failure"]
    assert r["finite"]
    assert r["reproducible"], r  # fixed-order sums: two eager runs agree bit for bit
    assert r["same"], r  # float32 tolerance on the loss sum and every weight


def test_seeds_together_on_the_gpu_equal_seeds_alone():
    """On a GPU, batched products may round differently from single ones:
    the same weights to float32 tolerance, trained with graph replays."""
    params = SETTINGS[1]
    make_all, data, _ = _factory(params, (1, 2))
    together = make_all()
    time_steps(together, data, n_steps=100, warmup=10)
    for s, m in zip((1, 2), together.models):
        alone = _factory(params, (s,))[0]()
        time_steps(alone, data, n_steps=100, warmup=10)
        for name, w in alone.neutral_weights().items():
            np.testing.assert_allclose(m.neutral_weights()[name], w, rtol=1e-4, atol=1e-5, err_msg=name)


def test_evaluation_on_the_gpu_gives_the_cpu_rank_record(tmp_path):
    make, data, df = _factory(SETTINGS[0])
    model = make()
    time_steps(model, data, n_steps=50, warmup=5)
    cpu = GRU4Rec(model.n_items, model.params, seed=1, support=model.support)
    model.item_ids = cpu.item_ids = item_index(df)
    model.save_weights(tmp_path / "w.npz")
    cpu.load_weights(tmp_path / "w.npz")
    a, b = model.evaluate(df.head(300)), cpu.evaluate(df.head(300))
    assert (a.higher - b.higher).abs().max() <= 1 and (a.target == b.target).all()


def test_the_training_loop_uses_the_graph_on_a_gpu():
    model = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=4), seed=0, device="cuda")
    assert type(step_runner(model, torch.zeros((), device="cuda"))) is GraphedSteps
