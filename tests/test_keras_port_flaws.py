"""The tutorial port's flaw switches: each changes exactly the behaviour it names.

Hand-made sessions, two lanes (items as ItemIds 1..8, served in this order):
A = [1,2,3], B = [4,5,6,7,8], C = [1,2,3,4], D = [3,4,5].
Windows: (A,B) 2 steps; C takes lane 0 -> (C,B) 2 steps; D takes lane 1 ->
(C,D) 1 step; C ends, nothing left -> lane 0 dropped -> (D) 1 step. 6 steps.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
pytest.importorskip("tensorflow")

from implementations.gru4rec_keras.data import SessionData  # noqa: E402
from implementations.gru4rec_keras.port import KerasPort  # noqa: E402

SESSIONS = {1: [1, 2, 3], 2: [4, 5, 6, 7, 8], 3: [1, 2, 3, 4], 4: [3, 4, 5]}
ITEMS = np.arange(1, 9)
DF = pd.DataFrame([(s, i, s * 100.0 + k) for s, items in SESSIONS.items() for k, i in enumerate(items)],
                  columns=["SessionId", "ItemId", "Time"])
DATA = SessionData.from_frame(DF, ITEMS)
F, T = False, True


def fit(tmp_path, **flaws):
    port = KerasPort(8, {"hidden": 3, "batch_size": 2, "n_epochs": 2, "dropout": 0.0, **flaws}, seed=0)
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
