"""The official split on a hand-made clicks file whose answer is worked out by hand.

Times are hours after 2014-04-01T00:00Z. Items 1, 2, 3 are common; the rest
are there to be dropped for a reason:

    session  clicks (item @ hour)              fate
    s1       1@0    2@0.1   3@0.2              train (train_tr)
    s2       1@1    2@1.1                      train (train_tr)
    s3       1@2    3@2.1   9@2.2              item 9 is rare (2 events) -> 1, 3
    s4       2@3    9@3.1                      loses item 9 -> length 1 -> dropped (step 4)
    s5       7@5                               length 1 -> dropped (step 2)
    s12      7@10   7@10.1  1@10.2             item 7 has 5 events but only 4 after step 2
    s13      7@11   7@11.1  2@11.2               -> dropped -> both sessions length 1 -> dropped
    s6       1@24   3@24.1  2@24.2             train; in the validation split's last day
    s9       3@47   1@(48h - 1 s)              last event 1 s before tmax - 86400 -> train
    s7       2@47.9 3@48                       last event exactly at tmax - 86400 -> test (>=)
    s11      1@50   5@50.1  2@50.2             test; item 5 never in train -> 1, 2
    s10      5@60   5@60.1  5@60.2             test; only item 5 -> nothing left
    s8       5@71   1@71.5  5@72               test; -> 1 alone -> shorter than 2 -> dropped

tmax = 72 h. Item 5 has 6 events, so it survives step 3 and is only dropped
from test in step 6. Validation: train's tmax is 48 h - 1 s, so its last day
starts at 24 h - 1 s: s6 and s9 are train_valid, s1-s3 train_tr.
"""
import json
import logging

import numpy as np
import pandas as pd
import pytest

from gru4rec_repro.data.clicks import read_clicks, write_clicks
from gru4rec_repro.data.errors import DataError
from gru4rec_repro.split import (
    OFFICIAL_RSC15_COUNTS,
    SPLITS,
    canonical_sha256,
    official_split,
    read_manifest,
    read_split,
    write_split,
)

T0 = 1396310400.0  # 2014-04-01T00:00:00Z
H = 3600.0

CLICKS = [  # (session, item, hour)
    (1, 1, 0), (1, 2, 0.1), (1, 3, 0.2),
    (2, 1, 1), (2, 2, 1.1),
    (3, 1, 2), (3, 3, 2.1), (3, 9, 2.2),
    (4, 2, 3), (4, 9, 3.1),
    (5, 7, 5),
    (12, 7, 10), (12, 7, 10.1), (12, 1, 10.2),
    (13, 7, 11), (13, 7, 11.1), (13, 2, 11.2),
    (6, 1, 24), (6, 3, 24.1), (6, 2, 24.2),
    (9, 3, 47), (9, 1, 48 - 1 / H),
    (7, 2, 47.9), (7, 3, 48),
    (11, 1, 50), (11, 5, 50.1), (11, 2, 50.2),
    (10, 5, 60), (10, 5, 60.1), (10, 5, 60.2),
    (8, 5, 71), (8, 1, 71.5), (8, 5, 72),
]


def clicks_frame(rows=CLICKS):
    return pd.DataFrame(
        {
            "SessionId": [r[0] for r in rows],
            "ItemId": [r[1] for r in rows],
            "Time": [T0 + r[2] * H for r in rows],
        }
    )


def events(df):
    """(session, item) pairs in stored order."""
    return list(zip(df["SessionId"].tolist(), df["ItemId"].tolist()))


@pytest.fixture
def splits(tmp_path):
    path = tmp_path / "clicks.dat"
    # shuffle the rows: the split must not depend on the file's order
    write_clicks(path, clicks_frame().sample(frac=1.0, random_state=3))
    return official_split(read_clicks(path), source=path)


def test_train_full_keeps_sessions_ending_before_the_last_day(splits):
    assert events(splits["train_full"]) == [
        (1, 1), (1, 2), (1, 3),
        (2, 1), (2, 2),
        (3, 1), (3, 3),  # rare item 9 dropped
        (6, 1), (6, 3), (6, 2),
        (9, 3), (9, 1),  # ends 1 s before tmax - 86400
    ]


def test_test_is_the_last_day_with_unseen_items_and_short_sessions_dropped(splits):
    # s7 ends exactly at tmax - 86400 (>= is test); s11 loses item 5;
    # s10 and s8 fall below length 2 once item 5 is gone
    assert events(splits["test"]) == [(7, 2), (7, 3), (11, 1), (11, 2)]


def test_validation_split_repeats_the_rule_on_train(splits):
    assert events(splits["train_tr"]) == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 3)]
    assert events(splits["train_valid"]) == [(6, 1), (6, 3), (6, 2), (9, 3), (9, 1)]


def test_times_are_unix_seconds_with_milliseconds(splits):
    test = splits["test"]
    assert test["Time"].dtype == np.float64
    assert test["Time"].tolist() == [T0 + 47.9 * H, T0 + 48 * H, T0 + 50 * H, T0 + 50.2 * H]


def test_sessions_stay_sorted_by_time_inside_a_session():
    # session 1 given out of order: the split sorts by (SessionId, Time)
    df = clicks_frame([(1, 1, 0.2), (1, 2, 0.1), (1, 1, 0), (4, 2, 1), (4, 1, 1.5), (4, 2, 2),
                       (5, 1, 30), (5, 2, 30.1), (6, 1, 60), (6, 2, 61)])
    out = official_split(df)
    assert events(out["train_full"])[:3] == [(1, 1), (1, 2), (1, 1)]


def test_empty_after_filtering_is_an_error():
    df = clicks_frame([(1, 1, 0), (2, 2, 1), (3, 3, 2), (3, 4, 3)])
    with pytest.raises(DataError, match="no events left"):
        official_split(df, source="tiny.dat")


def test_write_split_files_manifest_and_identical_hashes(splits, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    m1 = write_split(splits, a)
    m2 = write_split(splits, b)
    assert m1["splits"] == m2["splits"]
    for name in SPLITS:
        assert (a / f"{name}.parquet").is_file() and (a / f"{name}.tsv").is_file()
        assert (a / f"{name}.tsv").read_bytes() == (b / f"{name}.tsv").read_bytes()
    manifest = read_manifest(a)
    assert manifest["splits"]["test"] == {
        "events": 4, "sessions": 2, "items": 3, "sha256": canonical_sha256(splits["test"])
    }
    assert manifest["splits"]["train_full"]["items"] == 3
    assert not list(a.glob(".*tmp"))  # no temporary files left


def test_tsv_is_the_official_format(splits, tmp_path):
    write_split(splits, tmp_path)
    lines = (tmp_path / "test.tsv").read_text().splitlines()
    assert lines[0] == "SessionId\tItemId\tTime"
    assert lines[1].split("\t")[:2] == ["7", "2"]
    back = pd.read_csv(tmp_path / "test.tsv", sep="\t")
    pd.testing.assert_frame_equal(back, splits["test"], check_dtype=True)


def test_read_split_returns_sorted_typed_frames(splits, tmp_path):
    write_split(splits, tmp_path)
    df = read_split(tmp_path, "train_valid")
    assert list(df.columns) == ["SessionId", "ItemId", "Time"]
    assert [str(t) for t in df.dtypes] == ["int64", "int64", "float64"]
    assert events(df) == events(splits["train_valid"])


def test_canonical_hash_ignores_row_order_but_not_values(splits):
    test = splits["test"]
    assert canonical_sha256(test.iloc[::-1]) == canonical_sha256(test)
    changed = test.copy()
    changed.loc[0, "ItemId"] = 3
    assert canonical_sha256(changed) != canonical_sha256(test)


def test_official_counts_mismatch_is_recorded_and_loud(splits, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = write_split(splits, tmp_path, official_counts=OFFICIAL_RSC15_COUNTS)
    assert manifest["matches_official"] is False
    assert manifest["splits"]["test"]["matches_official"] is False
    assert "DOES NOT MATCH THE OFFICIAL COUNTS" in caplog.text
    ours = {n: {k: manifest["splits"][n][k] for k in ("events", "sessions", "items")} for n in SPLITS}
    manifest = write_split(splits, tmp_path / "same", official_counts=ours)
    assert manifest["matches_official"] is True
    assert json.loads((tmp_path / "same" / "manifest.json").read_text())["matches_official"] is True
