"""Dwell time and boosting (SPEC.md section 3) on one hand-made session.

Session 1 clicks A at 0 s, B at 80 s, C at 380 s, A at 390 s:
dwell = 80, 300, 10, 0 (the last event has no successor).
With t = 75: repeats = 1 + floor(dwell / 75) = 2, 5, 1, 1.
With t = 100: 1, 4, 1, 1.
"""
import pandas as pd
import pytest

from gru4rec_repro.dwell import boost, dwell_times, make_dwell_variant
from gru4rec_repro.split import SPLITS, read_manifest, read_split, write_split

A, B, C = 10, 20, 30


def session(sid=1, t0=0.0):
    return pd.DataFrame({"SessionId": [sid] * 4, "ItemId": [A, B, C, A],
                         "Time": [t0, t0 + 80.0, t0 + 380.0, t0 + 390.0]})


def two_sessions():
    return pd.concat([session(1), session(2, t0=100.0)], ignore_index=True)


def test_dwell_is_time_to_next_click_and_zero_at_session_end():
    assert dwell_times(two_sessions()).tolist() == [80, 300, 10, 0, 80, 300, 10, 0]


def test_boost_repeats_events_in_place():
    out = boost(session(), 75)
    assert out["ItemId"].tolist() == [A, A, B, B, B, B, B, C, A]
    # repeats share their event's time
    assert out["Time"].tolist() == [0, 0, 80, 80, 80, 80, 80, 380, 390]
    assert boost(session(), 100)["ItemId"].tolist() == [A, B, B, B, B, C, A]


def test_boost_does_not_leak_across_sessions():
    # session 2 starts before session 1 ends: dwell never spans two sessions
    out = boost(two_sessions(), 75)
    assert out.groupby("SessionId").size().tolist() == [9, 9]


def test_boost_rejects_non_positive_threshold():
    with pytest.raises(ValueError, match="threshold"):
        boost(session(), 0)


@pytest.mark.parametrize("apply_to, boosted", [("train", {"train_full", "train_tr"}), ("train+test", set(SPLITS))])
def test_dwell_variants_boost_train_only_or_also_test(tmp_path, apply_to, boosted):
    write_split({name: two_sessions() for name in SPLITS}, tmp_path / "data")
    manifest = make_dwell_variant(tmp_path / "data", tmp_path / "dwell75", 75, apply_to)
    for name in SPLITS:
        expected = 18 if name in boosted else 8
        assert len(read_split(tmp_path / "dwell75", name)) == expected
        assert manifest["splits"][name]["events"] == expected
    assert read_manifest(tmp_path / "dwell75")["dwell_boost"] == {
        "threshold": 75.0, "apply_to": apply_to, "boosted_splits": [n for n in SPLITS if n in boosted]}


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="apply_to"):
        make_dwell_variant(tmp_path, tmp_path / "x", 75, "test")
