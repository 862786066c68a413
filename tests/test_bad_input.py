"""Bad input: each case names the file, the line/column and the problem, and leaves no output."""
import json
import re

import pytest

from gru4rec_repro.data.clicks import read_clicks
from gru4rec_repro.data.errors import DataError
from gru4rec_repro.data.prepared import read_prepared
from gru4rec_repro.data.sources import prepare_dataset

GOOD = "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:52:10.000Z,214536503,S\n"


@pytest.mark.parametrize(
    "bad_line, where, problem",
    [
        ("2,2014-04-07T11:00:00.000Z,214536502", "line 3, column 4", "expected 4 columns"),  # missing
        ("2,2014-04-07T11:00:00.000Z,214536502,0,7", "line 3, column 5", "got 5"),  # extra
        ("2,2014-04-31T11:00:00.000Z,214536502,0", "line 3, column 2 (Timestamp)", "ISO 8601"),
        ("2,yesterday,214536502,0", "line 3, column 2 (Timestamp)", "'yesterday'"),
        ("2,2014-04-07T11:00:00.000Z,21453a502,0", "line 3, column 3 (ItemID)", "integer id"),
        ("x2,2014-04-07T11:00:00.000Z,214536502,0", "line 3, column 1 (SessionID)", "integer id"),
        ("2,,214536502,0", "line 3, column 2 (Timestamp)", "''"),
        ("garbage", "line 3", "expected 4 columns"),
    ],
)
def test_malformed_clicks_name_file_line_column(tmp_path, bad_line, where, problem):
    path = tmp_path / "clicks.dat"
    path.write_text(GOOD + bad_line + "\n" + GOOD)
    with pytest.raises(DataError) as err:
        read_clicks(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert where in message and problem in message, message


def test_empty_clicks_file(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_text("")
    with pytest.raises(DataError, match="clicks.dat: the file is empty"):
        read_clicks(path)


def bad_dataset_leaves_nothing(tmp_path, spec, match):
    out = tmp_path / "results" / "mine" / "data"
    with pytest.raises(DataError, match=match):
        prepare_dataset("mine", spec, out, workdir=tmp_path / "raw", progress=False)
    assert not out.exists() or not any(out.iterdir())


def test_bad_clicks_source_writes_no_output(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_text(GOOD + "2,2014-04-07T11:00:00.000Z\n")
    bad_dataset_leaves_nothing(tmp_path, {"source": "clicks", "path": str(path)}, r"clicks.dat, line 3")


def test_empty_after_filtering_writes_no_output(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_text(GOOD)  # one session, two items with one event each
    bad_dataset_leaves_nothing(tmp_path, {"source": "clicks", "path": str(path)}, r"clicks.dat: no events left")


def test_unknown_source_and_keys(tmp_path):
    bad_dataset_leaves_nothing(tmp_path, {"source": "ftp"}, "unknown source 'ftp'")
    bad_dataset_leaves_nothing(tmp_path, {"source": "clicks", "pth": "x"}, r"unknown key\(s\) \['pth'\]")


def tsv(path, rows, header="SessionId\tItemId\tTime"):
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


TRAIN = [(1, 10, 0.0), (1, 11, 60.0), (2, 10, 100.0), (2, 12, 160.0), (3, 11, 90000.0), (3, 12, 90060.0)]


def test_prepared_test_with_unknown_items(tmp_path):
    train = tsv(tmp_path / "train.tsv", TRAIN)
    test = tsv(tmp_path / "test.tsv", [(9, 10, 200000.0), (9, 77, 200060.0), (9, 78, 200100.0)])
    with pytest.raises(DataError) as err:
        read_prepared(train, test)
    message = str(err.value)
    assert message.startswith(str(test)) and "2 item(s)" in message and "77, 78" in message
    bad_dataset_leaves_nothing(tmp_path, {"source": "prepared", "train": str(train), "test": str(test)},
                               "never occur")


def test_prepared_missing_column_bad_value_empty(tmp_path):
    train = tsv(tmp_path / "train.tsv", TRAIN)
    no_time = tsv(tmp_path / "t1.tsv", [(9, 10), (9, 11)], header="SessionId\tItemId")
    with pytest.raises(DataError, match=r"t1.tsv, line 1: header lacks column\(s\) \['Time'\]"):
        read_prepared(train, no_time)
    bad = tsv(tmp_path / "t2.tsv", [(9, 10, 5.0), (9, "eleven", 6.0)])
    with pytest.raises(DataError, match=r"t2.tsv, line 3, column 2 \(ItemId\): cannot parse 'eleven'"):
        read_prepared(train, bad)
    empty = tmp_path / "t3.tsv"
    empty.write_text("")
    with pytest.raises(DataError, match="t3.tsv: the file is empty"):
        read_prepared(train, empty)
    header_only = tsv(tmp_path / "t4.tsv", [])
    with pytest.raises(DataError, match="t4.tsv: the file has a header but no data rows"):
        read_prepared(train, header_only)


def test_prepared_good_pair_is_used_as_given(tmp_path):
    train = tsv(tmp_path / "train.tsv", TRAIN)
    test = tsv(tmp_path / "test.tsv", [(9, 10, 200000.0), (9, 12, 200060.0)])
    manifest = prepare_dataset("mine", {"source": "prepared", "train": str(train), "test": str(test)},
                               tmp_path / "out", progress=False)
    assert manifest["splits"]["train_full"]["events"] == 6
    assert manifest["splits"]["test"]["events"] == 2
    # the validation split is cut from train's last day: session 3 (ends at 90060 s)
    assert manifest["splits"]["train_valid"]["events"] == 2


# One day of training clicks: every session ends in train's last day, so the
# official rule leaves no validation session (train_tr would be empty, and
# train_valid's items must occur in train_tr).
ONE_DAY = [(1, 10, 0.0), (1, 11, 60.0), (2, 10, 100.0), (2, 12, 160.0), (3, 11, 3600.0), (3, 12, 3660.0)]
NEXT_DAY = [(9, 10, 90000.0), (9, 12, 90060.0), (9, 11, 90100.0)]


def test_one_day_prepared_split_has_no_validation_and_says_so(tmp_path):
    from gru4rec_repro.dwell import make_dwell_variant
    from gru4rec_repro.run import read_split_file, run_seeds

    train = tsv(tmp_path / "train.tsv", ONE_DAY)
    test = tsv(tmp_path / "test.tsv", NEXT_DAY)
    out = tmp_path / "results" / "oneday" / "data"
    manifest = prepare_dataset("oneday", {"source": "prepared", "train": str(train), "test": str(test)},
                               out, progress=False)
    assert manifest["validation"]["available"] is False
    assert manifest["validation"]["missing_keys"] == ["train_tr", "train_valid"]
    assert "1.0 h" in manifest["validation"]["reason"]  # clicks from 0 s to 3660 s
    assert [manifest["splits"][s]["events"] for s in ("train_full", "test", "train_tr", "train_valid")] == [6, 3, 0, 0]

    # evaluating on test works: train_full and test are read and ranked (POP: 10 and 11
    # have 2 events, 12 has 2 as well -> all three tie; two targets of session 9)
    splits = read_split_file(out / "train_full.parquet"), read_split_file(out / "test.parquet")
    (folder,) = run_seeds("pop", *splits, {}, [1], tmp_path / "runs" / "pop", progress=False)
    assert (folder / "metrics.json").is_file()
    assert json.loads((folder / "metrics.json").read_text())["events"] == 2

    # evaluating on the validation split stops, naming the dataset and the keys to give,
    # also for a dwell variant derived from this split
    message = "dataset 'oneday' has no validation split .* datasets.oneday.train_tr and datasets.oneday.train_valid"
    path = out / "train_valid.parquet"
    with pytest.raises(DataError, match=re.escape(f"{path}: the split is empty: ") + message):
        read_split_file(path)
    make_dwell_variant(out, out / "dwell75-train", 75, "train")
    path = out / "dwell75-train" / "train_tr.parquet"
    with pytest.raises(DataError, match=re.escape(f"{path}: the split is empty: ") + message):
        read_split_file(path)


def test_two_day_prepared_split_cuts_its_validation_from_train(tmp_path):
    train = tsv(tmp_path / "train.tsv", TRAIN)
    test = tsv(tmp_path / "test.tsv", [(9, 10, 200000.0), (9, 12, 200060.0)])
    manifest = prepare_dataset("mine", {"source": "prepared", "train": str(train), "test": str(test)},
                               tmp_path / "out", progress=False)
    assert manifest["validation"] == {"available": True, "from": "cut from train by the official last-day rule"}
