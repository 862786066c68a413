"""The tutorial port's flaw switches: each changes exactly the behaviour it names.

This process runs the tests on its Keras backend (``KERAS_BACKEND``, default
tensorflow); :func:`test_on_other_backend` runs this file again in a fresh
process for each other backend (a process has one).

Hand-made sessions, two lanes (items as ItemIds 1..8, served in this order):
A = [1,2,3], B = [4,5,6,7,8], C = [1,2,3,4], D = [3,4,5].
Windows: (A,B) 2 steps; C takes lane 0 -> (C,B) 2 steps; D takes lane 1 ->
(C,D) 1 step; C ends, nothing left -> lane 0 dropped -> (D) 1 step. 6 steps.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")

from implementations.gru4rec_keras.data import SessionData  # noqa: E402
from implementations.gru4rec_keras import port as port_module  # noqa: E402
from implementations.gru4rec_keras.port import KerasPort  # noqa: E402
from other_backends import run_file_on_backend  # noqa: E402

SESSIONS = {1: [1, 2, 3], 2: [4, 5, 6, 7, 8], 3: [1, 2, 3, 4], 4: [3, 4, 5]}
ITEMS = np.arange(1, 9)
DF = pd.DataFrame([(s, i, s * 100.0 + k) for s, items in SESSIONS.items() for k, i in enumerate(items)],
                  columns=["SessionId", "ItemId", "Time"])
DATA = SessionData.from_frame(DF, ITEMS)
F, T = False, True


def fit(tmp_path, **flaws):
    port = KerasPort(8, {"hidden": 3, "batch_size": 2, "n_epochs": 2, "dropout": 0.0, **flaws}, seed=0)
    port.item_ids = ITEMS
    port.fit(DATA, tmp_path, progress=False, trace=True)
    return port, [s for s in port.trace if s["epoch"] == 1]


def masks(trace, key):
    return [s[key].tolist() for s in trace]


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    return fit(tmp_path_factory.mktemp("default"))


def test_default_resets_only_where_a_session_starts(default):
    _, trace = default
    assert masks(trace, "reset_before") == [[F, F], [F, F], [T, F], [F, F], [F, T], [F]]
    assert masks(trace, "reset_after") == [[F, F], [F, F], [F, F], [F, F], [F, F], [F]]
    assert sum(len(s["event"]) for s in trace) == 15 - 4  # every event but the last of each session


def test_reset_every_step_repeats_the_window_mask(default, tmp_path):
    _, trace = fit(tmp_path, flaw_reset_every_step=True)
    # step 3 is C's second step, still in the window C started: reset again
    assert masks(trace, "reset_before") == [[F, F], [F, F], [T, F], [T, F], [F, T], [F]]
    assert masks(trace, "reset_after") == masks(default[1], "reset_after")
    assert [s["event"].tolist() for s in trace] == [s["event"].tolist() for s in default[1]]


def test_reset_late_moves_the_reset_after_the_step(default, tmp_path):
    port, trace = fit(tmp_path, flaw_reset_late=True)
    assert masks(trace, "reset_before") == [[F, F]] * 5 + [[F]]
    assert masks(trace, "reset_after") == masks(default[1], "reset_before")
    # the state C's first step produced is thrown away; lane 1 keeps its state
    assert np.all(trace[2]["state_after"][0] == 0) and np.any(trace[2]["state_after"][1] != 0)
    assert np.any(default[1][2]["state_after"][0] != 0)


def test_epochs_minus_one(default, tmp_path):
    port, _ = fit(tmp_path, flaw_epochs_minus_one=True)
    assert port.epochs_trained == 1 and {s["epoch"] for s in port.trace} == {1}
    assert default[0].epochs_trained == 2


def test_drop_tail_ends_epoch_when_a_lane_cannot_be_refilled(default, tmp_path):
    _, trace = fit(tmp_path, flaw_drop_tail=True)
    events = np.concatenate([s["event"] for s in trace])
    all_events = np.concatenate([s["event"] for s in default[1]])
    assert len(trace) == 5 and len(events) == 10
    # only D's last prediction (its 2nd input event) is lost; the resets are those of the default
    assert set(all_events) - set(events) == {DATA.offsets[3] + 1}
    assert masks(trace, "reset_before") == masks(default[1], "reset_before")[:5]


def test_no_eval_reset_carries_state_into_the_next_test_session(default):
    port, _ = default
    test = DF
    good = port.evaluate(test)
    port.p["flaw_no_eval_reset"] = True
    try:
        bad = port.evaluate(test)
    finally:
        port.p["flaw_no_eval_reset"] = False
    eval_lanes = port.p["eval_batch_size"]
    assert eval_lanes >= 4  # all four test sessions fit in lanes at once: nothing to reset
    pd.testing.assert_frame_equal(good, bad)
    port.p["eval_batch_size"] = 1  # one lane: sessions follow each other in it
    try:
        good1 = port.evaluate(test)
        port.p["flaw_no_eval_reset"] = True
        bad1 = port.evaluate(test)
    finally:
        port.p["eval_batch_size"], port.p["flaw_no_eval_reset"] = eval_lanes, False
    pd.testing.assert_frame_equal(good1, good)  # with resets, lanes do not matter
    first = bad1.session_id == 1  # the first session starts from zero either way
    pd.testing.assert_frame_equal(bad1[first], good[first])
    assert not bad1[~first][["higher", "ties"]].equals(good[~first][["higher", "ties"]])


# ----- details of the public code (pcerdam/KerasGRU4Rec, model/gru4rec.py) -------------------
def test_session_id_order_serves_sessions_by_id_not_by_start_time(tmp_path):
    # session 2 starts first in time; by SessionId it is served second
    df = pd.DataFrame([(1, 1, 500.0), (1, 2, 501.0), (2, 3, 100.0), (2, 4, 101.0), (3, 5, 300.0), (3, 6, 301.0)],
                      columns=["SessionId", "ItemId", "Time"])
    items = np.arange(1, 7)
    by_time = SessionData.from_frame(df, items)
    assert by_time.session_ids.tolist() == [2, 3, 1]
    port = KerasPort(6, {"hidden": 3, "batch_size": 1, "n_epochs": 1, "dropout": 0.0,
                         "flaw_session_id_order": True}, seed=0)
    assert port.time_sort is False
    data = SessionData.from_frame(df, items, time_sort=port.time_sort)
    assert data.session_ids.tolist() == [1, 2, 3]
    port.item_ids = items
    port.fit(data, tmp_path, progress=False, trace=True)
    # one lane: the inputs follow SessionId order: items 1, 3, 5 (the first of sessions 1, 2, 3)
    assert [int(data.items[s["event"][0]]) + 1 for s in port.trace] == [1, 3, 5]
    # evaluation also walks the test sessions by SessionId: with one lane and no resets only
    # the first session served starts from zero state, as it does when evaluated alone
    port.p["eval_batch_size"], port.p["flaw_no_eval_reset"] = 1, True
    alone = {sid: port.evaluate(df[df.SessionId == sid]).reset_index(drop=True) for sid in (1, 2)}
    by_id = port.evaluate(df)
    pd.testing.assert_frame_equal(by_id[by_id.session_id == 1].reset_index(drop=True), alone[1])
    port.p["flaw_session_id_order"] = False
    by_start = port.evaluate(df)
    pd.testing.assert_frame_equal(by_start[by_start.session_id == 2].reset_index(drop=True), alone[2])


def test_carry_state_starts_each_epoch_from_the_last_state(default, tmp_path):
    port, trace = fit(tmp_path, flaw_carry_state=True)
    full = port.trace
    epoch2 = [s for s in full if s["epoch"] == 2]
    end1 = trace[-1]["state_after"]  # epoch 1 ended with one lane (the batch shrank)
    start2 = epoch2[0]["state_before"]
    np.testing.assert_array_equal(start2[:1], end1)
    np.testing.assert_array_equal(start2[1:], 0)  # the dropped lane starts from zero
    assert np.any(end1 != 0)
    # the faithful port starts every epoch from zero
    default_epoch2 = [s for s in default[0].trace if s["epoch"] == 2]
    assert np.all(default_epoch2[0]["state_before"] == 0)


def test_carry_state_enters_evaluation(tmp_path):
    port, _ = fit(tmp_path, flaw_carry_state=True)
    port.p["eval_batch_size"] = 1
    carried = port.carried.copy()
    assert carried.shape == (1, 3) and np.any(carried != 0)
    test = DF[DF.SessionId == 1]  # one session [1, 2, 3]: two scored events
    ranks = port.evaluate(test)
    # by hand: the first step runs the GRU from the carried state (numpy, Keras' cuDNN form)
    w = port.get_weights()
    H = 3
    x = w["GRU.kernel"][0] + w["GRU.bias"][0]  # item 1 -> index 0
    u = carried[0] @ w["GRU.recurrent_kernel"] + w["GRU.bias"][1]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z, r = sig(x[:H] + u[:H]), sig(x[H:2 * H] + u[H:2 * H])
    h = z * carried[0] + (1 - z) * np.tanh(x[2 * H:] + r * u[2 * H:])
    logits = h @ w["dense.kernel"] + w["dense.bias"]
    target = 1  # item 2
    assert ranks.higher.iloc[0] == int((logits > logits[target] + 1e-6).sum())
    port.p["flaw_carry_state"] = False
    np.testing.assert_array_equal(port.initial_state(1), 0)


def test_extra_output_unit_is_ranked_against(tmp_path):
    port = KerasPort(8, {"hidden": 3, "batch_size": 2, "n_epochs": 1, "dropout": 0.0,
                         "flaw_extra_output_unit": True}, seed=0)
    assert port.n_units == 9
    assert port.dense.kernel.shape == (3, 9) and port.gru.kernel.shape == (9, 9)
    port.item_ids = ITEMS
    port.fit(DATA, tmp_path, progress=False)
    bias = port.get_weights()["dense.bias"][:8]
    # the phantom unit made the bottom score, then the top one (+-20 on small logits: the
    # others' softmax stays > 0): on top it outranks every target, one more item above each
    port.dense.bias.assign(np.r_[bias, -20.0].astype(np.float32))
    low = port.evaluate(DF)
    port.dense.bias.assign(np.r_[bias, 20.0].astype(np.float32))
    high = port.evaluate(DF)
    np.testing.assert_array_equal(high.higher.to_numpy(), low.higher.to_numpy() + 1)
    np.testing.assert_array_equal(high.ties.to_numpy(), low.ties.to_numpy())
    assert KerasPort(8, {"hidden": 3}, seed=0).dense.kernel.shape == (3, 8)


def test_published_dropout_value_is_a_parameter():
    port = KerasPort(8, {"hidden": 3, "dropout": 0.25}, seed=0)
    x = np.ones((400, 50), np.float32)
    y = keras.ops.convert_to_numpy(port.dropout(x, training=True))
    assert port.dropout.rate == 0.25
    assert abs((y == 0).mean() - 0.25) < 0.02  # 20,000 draws: sd of the share 0.003
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_float32_time_reorders_tied_events_as_the_old_merge_did():
    from implementations.gru4rec_keras.port import float32_time_order

    t = 1396310400.0  # 2014: float32 spacing is 128 s
    df = pd.DataFrame([(1, 3, t - 1000.0), (1, 4, t - 900.0),   # item 3 appears first in the file
                       (2, 5, t + 1.0), (2, 3, t + 11.0),       # 10 s apart: one float32 value
                       (2, 4, t + 400.0)],                      # 3 float32 steps later: kept after
                      columns=["SessionId", "ItemId", "Time"])
    assert np.float32(t + 1.0) == np.float32(t + 11.0) and np.float32(t + 400.0) > np.float32(t + 11.0)
    got = float32_time_order(df)
    assert got[got.SessionId == 2].ItemId.tolist() == [3, 5, 4]
    assert got[got.SessionId == 1].ItemId.tolist() == [3, 4]
    assert got.Time.tolist()[2:4] == [float(np.float32(t + 1.0))] * 2
    # with float64 times nothing ties and the click order stands
    items = np.array([3, 4, 5])
    plain = SessionData.from_frame(df, items, time_sort=False)
    assert (items[plain.items] == [3, 4, 5, 3, 4]).all()
    flawed = SessionData.from_frame(got, items, time_sort=False)
    assert (items[flawed.items] == [3, 4, 3, 5, 4]).all()
    assert KerasPort(3, {"flaw_float32_time": True}, seed=0).p["flaw_float32_time"] is True


# ----- Keras 3 on every backend -----------------------------------------------------------
def test_padded_batches_train_as_the_unpadded_ones(tmp_path, monkeypatch):
    """Lanes padded to batch_size (JAX's compiled step) weigh nothing: same losses, same weights."""
    backend = keras.backend.backend()
    runs = {}
    for pad in (False, True):
        monkeypatch.setitem(port_module.PAD_BATCHES, backend, pad)
        port = KerasPort(8, {"hidden": 3, "batch_size": 3, "n_epochs": 2, "dropout": 0.0}, seed=0)
        port.item_ids = ITEMS
        records = port.fit(DATA, tmp_path / str(pad), progress=False, trace=True)
        assert min(len(s["event"]) for s in port.trace) < 3  # the batch shrinks: padding at work
        runs[pad] = [r["loss"] for r in records], port.get_weights()
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-5)
    for name, w in runs[False][1].items():
        np.testing.assert_allclose(runs[True][1][name], w, rtol=1e-4, atol=1e-6, err_msg=name)


def test_resumed_training_continues_exactly(tmp_path, monkeypatch):
    """A checkpoint after epoch 1 (weights, Adam's slots, the dropout's seed) resumes as if
    never stopped."""
    params = {"hidden": 3, "batch_size": 2, "n_epochs": 2, "dropout": 0.5}
    whole = KerasPort(8, params, seed=0)
    whole.item_ids = ITEMS
    whole.fit(DATA, tmp_path / "whole", progress=False)
    first = KerasPort(8, params, seed=0)
    first.item_ids = ITEMS
    original = first.run_epoch

    def stop_at_2(data, epoch, progress=False):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(data, epoch, progress)

    monkeypatch.setattr(first, "run_epoch", stop_at_2)
    with pytest.raises(KeyboardInterrupt):
        first.fit(DATA, tmp_path / "resumed", progress=False)
    resumed = KerasPort(8, params, seed=0)
    resumed.item_ids = ITEMS
    records = resumed.fit(DATA, tmp_path / "resumed", progress=False)
    assert resumed.epochs_trained == 1 and [r["epoch"] for r in records] == [1, 2]
    for name, w in whole.get_weights().items():
        np.testing.assert_allclose(resumed.get_weights()[name], w, rtol=1e-6, err_msg=name)


def test_backend_parameter_must_be_the_running_one():
    running = keras.backend.backend()
    assert KerasPort(3, {"backend": running}, seed=0).p["backend"] == running
    assert KerasPort(3, {}, seed=0).p["backend"] == running
    other = next(b for b in port_module.BACKENDS if b != running)
    with pytest.raises(ValueError, match=f"backend '{other}' asked for, but Keras runs on '{running}'"):
        KerasPort(3, {"backend": other}, seed=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        KerasPort(3, {"backend": "theano"}, seed=0)


def test_port_code_is_backend_agnostic():
    text = Path(port_module.__file__).read_text()
    assert "import tensorflow" not in text and "tf." not in text



def test_fused_adam_is_keras_adam():
    """compiled.fused_optimizer: the port's Adam with its update fused by XLA on TensorFlow
    gives Keras' Adam's values (within float32 contraction error) and is one XLA function;
    on the other backends it is Keras' Adam unchanged."""
    from implementations.gru4rec_keras import compiled

    rng = np.random.default_rng(3)
    shapes = [(40, 9), (9, 40), (40,)]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(20)]
    start = [rng.normal(size=s).astype("float32") for s in shapes]

    def train(fused):
        variables = [keras.Variable(w) for w in start]
        optimizer = keras.optimizers.Adam(learning_rate=0.01)
        if fused:
            optimizer = compiled.fused_optimizer(optimizer)
        optimizer.build(variables)
        for g in grads:
            optimizer.apply([keras.ops.convert_to_tensor(x) for x in g], variables)
        return [keras.ops.convert_to_numpy(v.value) for v in variables], optimizer

    plain, _ = train(False)
    fused, optimizer = train(True)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(plain, start))
    assert moved > 0.05  # 20 steps of lr 0.01 moved the weights
    for a, b in zip(plain, fused):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    if keras.backend.backend() == "tensorflow":
        steps = list(optimizer._fused_steps.values())
        assert len(steps) == 1 and steps[0]._jit_compile
    else:
        assert not hasattr(optimizer, "_fused_steps")


#: set in the processes :func:`test_on_other_backend` starts (they do not start more)
CHILD = "GRU4REC_KERAS_PORT_BACKEND_CHILD"


@pytest.mark.slow
@pytest.mark.parametrize("backend", port_module.BACKENDS)
def test_on_other_backend(backend):
    """Every other test of this file, in a fresh process on ``backend``."""
    run_file_on_backend(__file__, backend, CHILD, "not test_on_other_backend", allow_skipped=True)
