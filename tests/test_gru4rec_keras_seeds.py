"""Keras GRU4Rec: seeds trained together equal seeds trained alone (issue 19), on every Keras backend.

This process runs the tests on its Keras backend (``KERAS_BACKEND``, default
tensorflow); :func:`test_on_other_backend` runs this file again in a fresh
process for each other backend (the pattern of tests/test_gru4rec_keras.py).
On JAX the seeds are one vmapped step (``batched=True``: on JAX's CPU it is
not the default; the test that matters most); on TensorFlow and PyTorch they
step one after another in one loop.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from implementations.gru4rec_keras import BACKENDS, compiled  # noqa: E402
from implementations.gru4rec_keras.data import SessionData, item_index  # noqa: E402
from implementations.gru4rec_keras.model import GRU4Rec  # noqa: E402
from implementations.gru4rec_keras.runner import item_support  # noqa: E402
from implementations.gru4rec_keras.seeds import SeedsTogether  # noqa: E402
from implementations.gru4rec_keras.train import train, train_together  # noqa: E402
from other_backends import run_file_on_backend  # noqa: E402

CHILD = "GRU4REC_KERAS_SEEDS_BACKEND_CHILD"
#: JAX: the vmapped step, also on the CPU (where it is not the default); elsewhere the default
BATCHED = True if compiled.batches_seeds() else None
SEEDS = [1, 2, 3]

#: every loss, every embedding mode (constrained / separate embedding / one-hot), dropout on in each,
#: extra samples and none
SETTINGS = [
    dict(loss="cross-entropy", n_sample=8, logq=1.0, dropout_p_embed=0.2, dropout_p_hidden=0.3, momentum=0.2),
    dict(loss="bpr-max", n_sample=8, elu_param=0.5, constrained_embedding=False, embedding=0,
         dropout_p_embed=0.2, dropout_p_hidden=0.3, momentum=0.1, bpreg=0.7),
    dict(loss="top1", final_act="tanh", n_sample=0, constrained_embedding=False, embedding=0,
         dropout_p_hidden=0.5, onehot_dropout="hidden", time_sort=False),  # 2016: one-hot, no extra samples
    dict(loss="bpr", n_sample=8, constrained_embedding=False, embedding=16, dropout_p_embed=0.2,
         dropout_p_hidden=0.3, layers=[8, 6]),
    dict(loss="top1-max", n_sample=0, constrained_embedding=False, embedding=16, dropout_p_embed=0.25,
         dropout_p_hidden=0.3, momentum=0.3),
]
IDS = ["xe-constrained", "bprmax-onehot", "top1-onehot-nosample", "bpr-embedding", "top1max-embedding-nosample"]
#: The settings run here. JAX, where the seeds are one vmapped step: all of them. TensorFlow and
#: PyTorch step the seeds one after another through each model's own compiled step, whatever the
#: loss: two settings (constrained with samples; one-hot without), to keep the file within its
#: CPU budget (each setting costs a trace or compilation per model); GRU4REC_KERAS_SEEDS_ALL=1: all.
HERE = list(range(len(SETTINGS))) if (keras.backend.backend() == "jax" or os.environ.get("GRU4REC_KERAS_SEEDS_ALL")) \
    else [0, 2]


def sessions(n: int, items: int, seed: int, offset: int = 0) -> pd.DataFrame:
    """``n`` sessions of 2-8 events over ``items`` items, strided walks (some structure to learn)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        start, stride = int(rng.integers(0, items)), int(rng.integers(1, 4))
        rows += [(offset + s, (start + k * stride) % items + 1, s * 100.0 + k) for k in range(int(rng.integers(2, 9)))]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


TRAIN = sessions(64, 60, 0)            # 340 events, 60 items
TEST = sessions(30, 60, 1, offset=1000)
ITEM_IDS = item_index(TRAIN)
SUPPORT = item_support(TRAIN, ITEM_IDS)


def params_of(setting: dict, n_epochs: int = 2) -> dict:
    return {"layers": [8], "batch_size": 12, "n_epochs": n_epochs, "learning_rate": 0.1, **setting}


def make(setting: dict, seed: int, n_epochs: int = 2) -> GRU4Rec:
    m = GRU4Rec(len(ITEM_IDS), params_of(setting, n_epochs), seed, support=SUPPORT)
    m.item_ids = ITEM_IDS
    return m


def data_of(model: GRU4Rec) -> SessionData:
    return SessionData.from_frame(TRAIN, ITEM_IDS, where="train", time_sort=model.p["time_sort"])


_ALONE: dict = {}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One CPU thread, as the runner sets it (``threads: 1``): PyTorch's default of one per core
    made the tiny steps here 15x slower on the shared machine (measured 26 s against 2 s)."""
    compiled.configure(0, 1, "cpu")


@pytest.fixture(autouse=True)
def on_the_cpu():
    """Every test under the device scope the runner uses on the CPU (JAX compiles a step again
    under another default device; the tests share the compiled steps)."""
    with compiled.device_scope("/CPU:0"):
        yield


def alone(k: int, seed: int, tmp: Path) -> dict:
    """Seed ``seed`` of setting ``k`` trained alone (once per process): weights, losses, rank
    record, and the model (its compiled rank step ranks the weights trained together too)."""
    if (k, seed) not in _ALONE:
        m = make(SETTINGS[k], seed)
        recs = train(m, data_of(m), tmp / f"alone{k}-{seed}", support=SUPPORT, progress=False)
        _ALONE[k, seed] = {"w": m.get_weights(), "loss": [r["loss"] for r in recs], "ranks": m.evaluate(TEST),
                           "record": recs[0], "model": m}
    return _ALONE[k, seed]


def assert_same_as_alone(k: int, seed: int, model: GRU4Rec, records: list[dict], tmp: Path) -> float:
    """Weights within float32 tolerance, logged losses, IDENTICAL rank record (of the weights
    trained together, ranked by the lone model's compiled step: one trace fewer per seed on
    TensorFlow); returns the largest weight difference."""
    ref = alone(k, seed, tmp)
    w = model.get_weights()
    # float32 tolerance: JAX's vmapped step and the plain one are two XLA programs, whose sums
    # round in their own orders; after 2 epochs up to 1.15e-5 apart on one CPU, 1.9e-5 on another
    for name, a in ref["w"].items():
        np.testing.assert_allclose(w[name], a, rtol=1e-5, atol=5e-5, err_msg=f"seed {seed}: {name}")
    assert [r["loss"] for r in records] == pytest.approx(ref["loss"], rel=1e-5)
    ref["model"].set_weights(w)
    pd.testing.assert_frame_equal(ref["model"].evaluate(TEST), ref["ranks"])
    return max(float(np.abs(w[n] - a).max()) for n, a in ref["w"].items())


@pytest.mark.parametrize("k", HERE, ids=[IDS[k] for k in HERE])
def test_seeds_trained_together_equal_seeds_trained_alone(k, tmp_path):
    """Seeds 1, 2, 3 trained together (own init, negatives, dropout generator; the shared
    batches, resets and shrinking end of each epoch) end with each seed's weights alone
    (float32 tolerance), its logged losses and its IDENTICAL rank record; each seed writes its
    own folder, log and checkpoint."""
    models = [make(SETTINGS[k], s) for s in SEEDS]
    logs = train_together(models, data_of(models[0]), [tmp_path / f"together{s}" for s in SEEDS],
                          support=SUPPORT, progress=False, batched=BATCHED)
    diffs = [assert_same_as_alone(k, s, m, lg, tmp_path) for s, m, lg in zip(SEEDS, models, logs)]
    print(f"{compiled.backend()} {IDS[k]}: largest weight difference together vs alone {max(diffs):.3g}")
    for s, lg in zip(SEEDS, logs):
        assert [r["seeds_together"] for r in lg] == [3, 3]
        folder = tmp_path / f"together{s}"
        assert (folder / "checkpoint.npz").exists()
        lines = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]
        assert lines == lg and [r["epoch"] for r in lines] == [1, 2]
        assert set(lines[0]) - {"seeds_together"} == set(alone(k, s, tmp_path)["record"])  # a lone run's keys
    # the seeds are different models (a shared init, sampler or dropout stream would make them closer)
    assert not np.allclose(models[0].get_weights()["By"], models[1].get_weights()["By"])
    assert models[0].dropout_p


def test_seeds_together_batched_on_jax_only():
    m = [make(SETTINGS[0], s) for s in SEEDS[:2]]
    if compiled.backend() == "jax":
        assert SeedsTogether(m, batched=True).batched
    else:
        assert not SeedsTogether(m).batched
        with pytest.raises(ValueError, match="batched=True needs JAX"):
            SeedsTogether(m, batched=True)


def test_seeds_together_resume_from_their_own_checkpoints_without_retraining(tmp_path):
    """A job stopped after seeds 1 and 2 finished epoch 1 and seed 3 finished nothing: the re-run
    trains seed 3's epoch 1 alone, then the three together; the finished epochs are not trained
    again, and every seed ends as if trained alone. A third run finds everything done."""
    dirs = [tmp_path / f"s{s}" for s in SEEDS]
    before = []
    for s, d in zip(SEEDS[:2], dirs):
        m = make(SETTINGS[0], s)
        m.p["n_epochs"] = 1  # the job stopped after epoch 1 (the compiled steps: those of n_epochs 2)
        train(m, data_of(m), d, support=SUPPORT, progress=False)
        before.append(json.loads((d / "train_log.jsonl").read_text().splitlines()[0]))
    models = [make(SETTINGS[0], s) for s in SEEDS]
    logs = train_together(models, data_of(models[0]), dirs, support=SUPPORT, progress=False, batched=BATCHED)
    for b, lg in zip(before, logs):
        assert lg[0] == b and "seeds_together" not in lg[0]  # epoch 1 kept, not retrained
        assert [r["seeds_together"] for r in lg[1:]] == [3]
    assert [r["seeds_together"] for r in logs[2]] == [1, 3]  # seed 3's epoch 1 ran alone
    for seed, m, lg in zip(SEEDS, models, logs):
        assert_same_as_alone(0, seed, m, lg, tmp_path)
    again = [make(SETTINGS[0], s) for s in SEEDS]
    assert train_together(again, data_of(again[0]), dirs, support=SUPPORT, progress=False, batched=BATCHED) == logs


def test_seeds_together_refuses_models_of_different_runs():
    a = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=2), seed=1, support=np.ones(10))
    b = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=3), seed=2, support=np.ones(10))
    with pytest.raises(ValueError, match="differ in params"):
        SeedsTogether([a, b])
    c = GRU4Rec(10, dict(layers=[4], batch_size=2, n_sample=2), seed=2, support=np.arange(1.0, 11.0))
    with pytest.raises(ValueError, match="different item support"):
        SeedsTogether([a, c])
    with pytest.raises(ValueError, match=r"neg_idx of shape \(2,\), expected \(2, n_sample\)"):
        SeedsTogether([a, GRU4Rec(10, a.p, seed=3, support=np.ones(10))]).train_step_tensor([0, 1], [1, 2],
                                                                                            np.zeros(2))


def test_run_seeds_trains_the_seeds_together_and_as_alone(tmp_path, monkeypatch):
    """gru4rec_repro.run.run_seeds uses run.seeds_together: the same rank records and metrics
    as with GRU4REC_KERAS_SEEDS_TOGETHER=0; each seed its own folder and weights."""
    from gru4rec_repro.run import run_seeds

    params = {**params_of(SETTINGS[0]), "backend": compiled.backend()}  # compiled steps of the tests above
    together = run_seeds("gru4rec_keras", TRAIN, TEST, params, SEEDS, tmp_path / "t", threads=1, device="cpu",
                         progress=False)
    monkeypatch.setenv("GRU4REC_KERAS_SEEDS_TOGETHER", "0")
    apart = run_seeds("gru4rec_keras", TRAIN, TEST, params, SEEDS, tmp_path / "a", threads=1, device="cpu",
                      progress=False)
    for t, a in zip(together, apart):
        pd.testing.assert_frame_equal(pd.read_parquet(t / "ranks.parquet"), pd.read_parquet(a / "ranks.parquet"))
        assert json.loads((t / "metrics.json").read_text()) == json.loads((a / "metrics.json").read_text())
        assert json.loads((t / "train_log.jsonl").read_text().splitlines()[0])["seeds_together"] == 3
        assert "seeds_together" not in json.loads((a / "train_log.jsonl").read_text().splitlines()[0])
        with np.load(t / "weights.npz") as wt, np.load(a / "weights.npz") as wa:
            for name in ("Wy", "By"):
                np.testing.assert_allclose(wt[name], wa[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_on_other_backend(backend):
    """Every other test of this file, in a fresh process on ``backend``."""
    run_file_on_backend(__file__, backend, CHILD, "not test_on_other_backend")
