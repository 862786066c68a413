"""External implementations: the adapters' shared helper, the environment builder, the adapters."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from implementations.external import adapter_common as ac


# --------------------------------------------------------------------------- adapter_common


def write_tsv(path, rows):
    pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).to_csv(path, sep="\t", index=False)
    return path


def test_read_split_sorts_by_session_then_time_stably(tmp_path):
    path = write_tsv(tmp_path / "s.tsv", [(2, 7, 5.0), (1, 3, 2.0), (1, 9, 1.0), (2, 4, 5.0)])
    df = ac.read_split(path)
    assert df.dtypes.astype(str).tolist() == ["int64", "int64", "float64"]
    # session 1 by time; session 2's two events at the same time keep the file's order
    assert df["ItemId"].tolist() == [9, 3, 7, 4]


def test_read_split_names_the_file_and_the_missing_column(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("SessionId\tItem\tTime\n1\t2\t3\n")
    with pytest.raises(ac.AdapterError, match=r"bad\.tsv.*\['ItemId'\]"):
        ac.read_split(path)
    with pytest.raises(ac.AdapterError, match="no such split file"):
        ac.read_split(tmp_path / "none.tsv")


def test_item_index_is_ascending_item_id_order_with_support():
    index = ac.ItemIndex(pd.DataFrame({"ItemId": [30, 10, 30, 20, 30]}))
    assert index.item_ids.tolist() == [10, 20, 30]
    assert index.support.tolist() == [1, 1, 3]
    assert index.to_index([30, 10]).tolist() == [2, 0]
    assert index.to_ids([1, 2]).tolist() == [20, 30]
    assert index.contains([5, 10, 25, 30, 99]).tolist() == [False, True, False, True, False]
    with pytest.raises(KeyError, match="not in the item index"):
        index.to_index([11])


def test_prediction_events_drop_unseen_items_then_pair_inputs_with_next_event():
    index = ac.ItemIndex(np.array([10, 20, 30]))
    # session 1: 10, 99 (unseen), 20, 30 -> kept 10, 20, 30 -> events (pos 0: 10->20), (pos 1: 20->30)
    # session 2: 30 only -> no event; session 3: 99, 20 -> kept 20 only -> no event
    # session 4: 20, 20 -> (pos 0: 20->20)
    test = pd.DataFrame({
        "SessionId": [1, 1, 1, 1, 2, 3, 3, 4, 4],
        "ItemId": [10, 99, 20, 30, 30, 99, 20, 20, 20],
        "Time": np.arange(9, dtype=float),
    })
    ev = ac.prediction_events(test, index)
    assert ev.dropped == 2
    assert ev.frame["session_id"].tolist() == [1, 1, 4]
    assert ev.frame["position"].tolist() == [0, 1, 0]
    assert ev.frame["target"].tolist() == [20, 30, 20]
    assert ev.target_idx.tolist() == [1, 2, 1]
    assert ev.input_idx.tolist() == [0, 1, 1]
    assert ev.history(1).tolist() == [0, 1]
    assert ev.history(1, max_len=1).tolist() == [1]
    mat, lengths = ev.padded([0, 1, 2], max_len=3, offset=1)
    assert mat.tolist() == [[1, 0, 0], [1, 2, 0], [2, 0, 0]]
    assert lengths.tolist() == [1, 2, 1]
    mat, lengths = ev.padded([1], max_len=1, offset=1, align="right")
    assert mat.tolist() == [[2]] and lengths.tolist() == [1]
    mat, _ = ev.padded([1], max_len=3, pad=-1, align="right")
    assert mat.tolist() == [[-1, 0, 1]]


def test_rank_counts_by_hand():
    scores = np.array([[0.1, 0.5, 0.5, 0.9],
                       [3.0, 1.0, 2.0, 1.0]])
    higher, ties = ac.rank_counts(scores, np.array([1, 0]))
    assert higher.tolist() == [1, 0]  # row 0: only 0.9 above 0.5; row 1: target is the best
    assert ties.tolist() == [1, 0]  # row 0: the other 0.5
    higher, ties = ac.rank_counts(scores, np.array([0, 3]))
    assert higher.tolist() == [3, 2] and ties.tolist() == [0, 1]
    with pytest.raises(ValueError, match="NaN"):
        ac.rank_counts(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        ac.rank_counts(np.zeros((2, 3)), np.array([0]))


def test_rank_counts_matches_the_project_reference():
    from gru4rec_repro.contract import rank_counts as reference
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(np.float32)  # many ties
    target = rng.integers(0, 40, size=50)
    for a, b in zip(ac.rank_counts(scores, target), reference(scores, target)):
        np.testing.assert_array_equal(a, b)


def test_translation_refuses_a_silently_dropped_parameter():
    tr = ac.Translation({"learning_rate": 0.1, "momentum": 0.2, "layers": [100], "n_sample": 0})
    assert tr.use("learning_rate") == 0.1
    tr.use("layers", "hidden_size", 100)
    tr.cannot("momentum", "the library's Adam has no momentum term")
    tr.also("loss_type", "CE")
    with pytest.raises(ac.AdapterError, match=r"\['n_sample'\]"):
        tr.check_complete()
    tr.no_setting("n_sample", "no sampling: the library scores all items")
    info = tr.info()
    assert info["translated"] == {"learning_rate": 0.1, "hidden_size": 100, "loss_type": "CE"}
    assert info["not_expressed"]["momentum"].endswith("(run's value: 0.2)")
    assert info["implicit"] == {"n_sample": "no sampling: the library scores all items (run's value: 0)"}


def test_timer_laps():
    timer = ac.Timer()
    with timer.epoch():
        pass
    timer.start()
    timer.lap()
    assert len(timer.seconds_per_epoch) == 2 and all(s >= 0 for s in timer.seconds_per_epoch)
    assert timer.seconds_total >= sum(timer.seconds_per_epoch)


def test_write_outputs_and_parse_args(tmp_path):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"loss": "cross-entropy"}))
    args = ac.parse_args(["--train", "a.tsv", "--test", "b.tsv", "--params", str(params),
                          "--seed", "3", "--out", str(tmp_path / "o")])
    assert args.params == {"loss": "cross-entropy"} and args.seed == 3 and args.out.is_dir()
    ranks = pd.DataFrame({"session_id": [1], "position": [0], "target": [5], "higher": [2], "ties": [0]})
    info = {"library": "x", "version": "1", "seconds_per_epoch": [1], "seconds_total": 2,
            "not_expressed": {}, "translated": {"a": 1}}
    ac.write_outputs(args.out, ranks, info)
    assert pd.read_csv(args.out / "ranks.csv").to_dict("records") == ranks.to_dict("records")
    assert json.loads((args.out / "adapter_info.json").read_text())["seconds_per_epoch"] == [1.0]
    with pytest.raises(ac.AdapterError, match="missing key"):
        ac.write_outputs(args.out, ranks, {"library": "x"})
    with pytest.raises(ac.AdapterError, match="negative"):
        ac.write_outputs(args.out, ranks.assign(ties=-1), info)
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(ac.AdapterError, match="JSON object"):
        ac.parse_args(["--train", "a", "--test", "b", "--params", str(bad), "--seed", "1", "--out", str(tmp_path)])
