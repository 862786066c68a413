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


# --------------------------------------------------------------------------- the main side

import os  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from gru4rec_repro import external  # noqa: E402
from gru4rec_repro.contract import EXTERNAL, resolve, run_params  # noqa: E402


def frame(rows):
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype(
        {"SessionId": "int64", "ItemId": "int64", "Time": "float64"})


TRAIN = frame([(1, 10, 0), (1, 20, 1), (2, 30, 2), (2, 10, 3), (3, 40, 4), (3, 20, 5)])
# session 7: 10, 99 (unseen: dropped), 20, 30 -> events (0: ->20), (1: ->30); session 8: 40 only -> none
TEST = frame([(7, 10, 10), (7, 99, 11), (7, 20, 12), (7, 30, 13), (8, 40, 14)])


def test_expected_events_by_hand():
    want = external.expected_events(TRAIN, TEST)
    assert want.to_dict("records") == [{"session_id": 7, "position": 0, "target": 20},
                                       {"session_id": 7, "position": 1, "target": 30}]


def test_expected_events_agree_with_adapter_common():
    rng = np.random.default_rng(3)
    train = frame([(s, int(rng.integers(0, 30)), t) for t, s in enumerate(np.repeat(np.arange(40), 4))])
    test = frame([(100 + s, int(rng.integers(0, 40)), t) for t, s in enumerate(np.repeat(np.arange(30), 5))])
    ev = ac.prediction_events(test, ac.ItemIndex(train))
    pd.testing.assert_frame_equal(external.expected_events(train, test), ev.frame)


def record(rows):
    return pd.DataFrame(rows, columns=["session_id", "position", "target", "higher", "ties"])


def test_check_rank_record_accepts_the_right_events_in_any_order():
    got = external.check_rank_record(record([(7, 1, 30, 0, 0), (7, 0, 20, 3, 0)]), TRAIN, TEST, "x")
    assert got[["position", "higher"]].values.tolist() == [[0, 3], [1, 0]]


@pytest.mark.parametrize("rows, message", [
    ([(7, 0, 20, 0, 0)], "1 of 2 missing"),
    ([(7, 0, 20, 0, 0), (7, 1, 30, 0, 0), (8, 0, 40, 0, 0)], "1 unexpected"),
    ([(7, 0, 20, 0, 0), (7, 0, 20, 0, 0), (7, 1, 30, 0, 0)], "more than once"),
    ([(7, 0, 20, 0, 0), (7, 1, 10, 0, 0)], "wrong target"),
    ([(7, 0, 20, 2, 2), (7, 1, 30, 0, 0)], r"higher \+ ties > 3"),  # 4 training items
])
def test_check_rank_record_names_the_problem(rows, message):
    with pytest.raises(external.ExternalError, match=message):
        external.check_rank_record(record(rows), TRAIN, TEST, "lib: ranks.csv")


def test_every_external_implementation_is_registered_and_has_its_files():
    assert set(external.names()) == set(EXTERNAL)
    for name in EXTERNAL:
        folder = external.implementation_dir(name)
        assert (folder / "features.yaml").is_file()
        assert resolve(name).__name__ == f"run_{name}"
    with pytest.raises(external.ExternalError, match="no external implementation"):
        external.implementation_dir("nope")


def fake_implementation(root: Path, name: str, requirements: str, adapter: str = "") -> None:
    (root / name).mkdir(parents=True)
    (root / name / "requirements.txt").write_text(requirements)
    (root / name / "adapter.py").write_text(adapter)


def test_environment_build_failure_names_the_implementation_and_shows_pips_log(tmp_path, monkeypatch):
    monkeypatch.setattr(external, "EXTERNAL_DIR", tmp_path / "impl")
    fake_implementation(tmp_path / "impl", "broken", "this is not a requirement !!!\n")
    with pytest.raises(external.ExternalError) as err:
        external.build_environment("broken", tmp_path / "envs")
    text = str(err.value)
    assert text.startswith("broken: environment build failed (pip install exited with")
    assert "requirements.txt" in text
    assert "this is not a requirement" in text  # pip's complaint, from the log's tail
    assert not any(p.is_dir() for p in (tmp_path / "envs").iterdir())  # no half-built environment


def test_environment_is_built_once_when_two_jobs_start_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(external, "EXTERNAL_DIR", tmp_path / "impl")
    fake_implementation(tmp_path / "impl", "empty", "# no pins of its own\n")
    results, errors = [], []

    def build():
        try:
            results.append(external.build_environment("empty", tmp_path / "envs"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2 and results[0] == results[1]
    record_ = json.loads((results[0] / external.MARKER).read_text())
    assert record_["implementation"] == "empty"
    log_text = (results[0].parent / f"{results[0].name}.build.log").read_text()
    assert log_text.count("-m venv") == 1  # one build; the other job found it built
    # the environment sees the main environment's packages (numpy, pandas; torch where installed)
    out = subprocess.run([str(results[0] / "bin" / "python"), "-c", "import numpy, pandas; print('ok')"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "ok"
    # another requirements.txt is another environment
    (tmp_path / "impl" / "empty" / "requirements.txt").write_text("# changed\n")
    assert external.environment_dir("empty", tmp_path / "envs") != results[0]


def test_environment_key_has_the_main_environments_torch_and_numpy(monkeypatch):
    main = external.main_environment()
    from importlib import metadata
    assert main["torch"] == metadata.version("torch") and main["numpy"] == metadata.version("numpy")
    key = external.environment_key("cornac")
    for package in ("torch", "numpy"):
        monkeypatch.setattr(external, "main_environment", lambda p=package: dict(main, **{p: "0.0.1"}))
        assert external.environment_key("cornac") != key, package
    monkeypatch.setattr(external, "main_environment", lambda: dict(main))
    assert external.environment_key("cornac") == key


def load_check_pins():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_pins", external.EXTERNAL_DIR / "check_pins.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_check_pins_finds_every_unpinned_package_of_the_tree_but_torchs(tmp_path):
    """Against the main environment's own packages: pytest needs pluggy and iniconfig (and packaging)."""
    from importlib import metadata

    cp = load_check_pins()
    v = {n: metadata.version(n) for n in ("pytest", "pluggy", "iniconfig", "packaging")}
    req = tmp_path / "requirements.txt"
    req.write_text(f"# a comment\npytest=={v['pytest']}\npluggy=={v['pluggy']}  # inline\n")
    result = cp.check(str(req))
    assert {"iniconfig", "packaging"} <= set(result["unpinned"]) and "pluggy" not in result["unpinned"]
    assert result["closure"]["pytest"] == v["pytest"] and not result["missing"]
    req.write_text("".join(f"{n}=={'0.0.1' if n == 'pluggy' else ver}\n" for n, ver in v.items()))
    result = cp.check(str(req))
    assert result["mismatched"] == {"pluggy": ["0.0.1", v["pluggy"]]}
    # torch's own tree comes from the main environment: not asked for
    req.write_text(f"torch=={metadata.version('torch')}\n")
    assert cp.check(str(req))["closure"] == {} and cp.check(str(req))["unpinned"] == {}
    req.write_text("pytest>=1\n")
    with pytest.raises(SystemExit, match="not an exact pin"):
        cp.check(str(req))


# --------------------------------------------------------------------------- real training on tiny data


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory):
    """A tiny synthetic split (config/test.yaml's generator, fewer sessions)."""
    from gru4rec_repro.data.clicks import read_clicks
    from gru4rec_repro.data.synthetic import generate
    from gru4rec_repro.split import official_split

    root = tmp_path_factory.mktemp("tiny")
    generate(root / "clicks.dat", n_sessions=400, n_items=80, n_days=4, seed=7, progress=False)
    splits = official_split(read_clicks(root / "clicks.dat"))
    return splits["train_full"], splits["test"]


@pytest.fixture(scope="session")
def env_cache():
    """Environments live in $GRU4REC_EXTERNAL_CACHE or ~/.cache/gru4rec_repro/envs (built once, reused)."""
    return external.cache_dir()


XE = {"loss": "cross-entropy", "layers": [32], "batch_size": 16, "dropout_p_hidden": 0.4, "learning_rate": 0.2,
      "momentum": 0.2, "n_sample": 2048, "sample_alpha": 0.5, "logq": 1.0, "n_epochs": 2}


def check_real_run(out: Path, train, test, n_epochs: int) -> pd.DataFrame:
    ranks = pd.read_parquet(out / "ranks.parquet")
    want = external.expected_events(train, test)
    assert len(ranks) == len(want) > 50
    pd.testing.assert_frame_equal(ranks[["session_id", "position", "target"]], want)
    n_items = train["ItemId"].nunique()
    assert ((ranks["higher"] + ranks["ties"]) <= n_items - 1).all()
    assert ranks["higher"].nunique() > 5  # a model's ranks, not a constant
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["events"] == len(want)
    assert (out / "adapter.log").is_file() and not (out / "adapter").exists()  # scratch removed
    log_lines = (out / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log_lines] == list(range(1, n_epochs + 1))
    return ranks


def require_environment(name: str, cache) -> None:
    """Skip, saying why, when ``name``'s environment is not built and the package index cannot be reached."""
    reason = external.environment_unavailable(name, cache)
    if reason:
        pytest.skip(reason)


@pytest.mark.slow
def test_recbole_trains_for_real_through_its_environment(tiny_split, env_cache, tmp_path, monkeypatch):
    from gru4rec_repro.run import run_implementation

    require_environment("recbole", env_cache)
    monkeypatch.setenv(external.CACHE_ENV, str(env_cache))
    train, test = tiny_split
    run_implementation("recbole", train, test, XE, 1, tmp_path / "seed1", threads=1, device="cpu")
    ranks = check_real_run(tmp_path / "seed1", train, test, XE["n_epochs"])
    info = json.loads((tmp_path / "seed1" / "adapter_info.json").read_text())
    assert info["library"] == "recbole" and info["version"] == "1.2.1"
    assert info["translated"]["loss_type"] == "CE" and info["translated"]["hidden_size"] == 32
    # what RecBole cannot express is listed, with the run's value
    assert {"momentum", "dropout_p_hidden", "n_sample", "logq", "time_sort"} <= set(info["not_expressed"])
    assert "0.2" in info["not_expressed"]["momentum"]
    # MAX_ITEM_LIST_LENGTH 50: the truncated test events counted on this split and printed
    cut = info["history_truncation"]
    assert cut["test_events"] == len(ranks) and cut["max_item_list_length"] == 50
    assert f"truncates {cut['test_events_truncated']} of {cut['test_events']} test events" \
        in info["not_expressed"]["history_length"]
    assert "MAX_ITEM_LIST_LENGTH 50 truncates the history of" in (tmp_path / "seed1" / "adapter.log").read_text()
    assert info["main_environment"] == external.main_environment()
    # trained: better than chance (a random ranking puts ~20/80 of the targets in the top 20)
    assert (ranks["higher"] + ranks["ties"] < 20).mean() > 0.4
    # the same seed gives the same rank record
    run_implementation("recbole", train, test, XE, 1, tmp_path / "again", threads=1, device="cpu")
    pd.testing.assert_frame_equal(ranks, pd.read_parquet(tmp_path / "again" / "ranks.parquet"))


def load_adapter(name: str):
    """An adapter module, loaded in the main environment (its library is imported only by main())."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_adapter", external.EXTERNAL_DIR / name / "adapter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recbole_counts_the_test_events_and_training_examples_max_item_list_length_cuts():
    mod = load_adapter("recbole")
    # session 1: 60 events, session 2: 3; test session 9: 60 events (items cycle over the 63 training items)
    train = frame([(1, i, i) for i in range(60)] + [(2, 60 + i, 100 + i) for i in range(3)])
    test = frame([(9, i % 63, 200 + i) for i in range(60)])
    events = mod.ac.prediction_events(test, mod.ac.ItemIndex(train))
    cut = mod.truncation(train, events)
    # test: the event at position p has p + 1 items of history: > 50 for p = 50..58 (59 events in all)
    assert cut == {"max_item_list_length": 50, "test_events": 59, "test_events_truncated": 9,
                   "longest_test_history": 59, "training_examples": 61, "training_examples_truncated": 9,
                   "longest_training_session": 60}
    assert mod.truncation(train, events, max_len=58)["test_events_truncated"] == 1


def test_torch_rechub_drops_only_a_last_batch_of_one():
    mod = load_adapter("torch_rechub")
    assert mod.last_batch_of_one(33, 32) and mod.last_batch_of_one(65, 32)
    assert not mod.last_batch_of_one(64, 32) and not mod.last_batch_of_one(34, 32)
    with pytest.raises(mod.ac.AdapterError, match="at least 2"):
        mod.last_batch_of_one(1, 32)


def test_adapters_list_what_their_library_does_differently_with_its_file_and_line():
    """Issue 17, item 11: the translations name the behaviours that differ although translated."""
    xe = resolve_params({"loss": "cross-entropy", "layers": [100], "batch_size": 32, "dropout_p_hidden": 0.4})
    _, tr = load_adapter("cornac").translate(xe, "cpu")
    assert "losses.py:74" in tr.info()["not_expressed"]["batch_size.loss_divisor"]
    _, tr = load_adapter("torch_rechub").translate(xe, "cpu")
    assert "basic/layers.py:282-285" in tr.info()["not_expressed"]["dropout_p_hidden.site"]
    _, tr = load_adapter("recpack").translate(xe)
    info = tr.info()["not_expressed"]
    assert "eps 1e-10" in info["learning_rate.adagrad_eps"] and "gru4rec.py:812-816" in info["init"]


def authors_checkout():
    path = os.environ.get("GRU4REC_AUTHORS_CHECKOUT")
    if not path:
        pytest.skip("no checkout of the authors' code configured: set GRU4REC_AUTHORS_CHECKOUT="
                    "/path/to/GRU4Rec_PyTorch_Official to run this test")
    return path


@pytest.mark.slow
def test_authors_code_through_its_forward_pass_matches_its_own_evaluation(tiny_split, env_cache, tmp_path,
                                                                          monkeypatch):
    from gru4rec_repro.evaluation import metrics_from_ranks
    from gru4rec_repro.run import run_implementation

    checkout = authors_checkout()
    require_environment("authors", env_cache)
    monkeypatch.setenv(external.CACHE_ENV, str(env_cache))
    monkeypatch.setenv(external.OPTIONS_ENV, json.dumps({"authors": {"checkout": checkout}}))
    train, test = tiny_split
    run_implementation("authors", train, test, XE, 1, tmp_path / "seed1", threads=1, device="cpu")
    ranks = check_real_run(tmp_path / "seed1", train, test, XE["n_epochs"])
    info = json.loads((tmp_path / "seed1" / "adapter_info.json").read_text())
    assert info["not_expressed"] == {}  # the official code takes every setting of ours
    # the code's own evaluation.batch_eval on the same model = our evaluation of the rank record
    ours = metrics_from_ranks(ranks)["conservative"]
    assert ours["recall@20"] == pytest.approx(info["own_evaluation"]["recall@20"], abs=1e-9)
    assert ours["mrr@20"] == pytest.approx(info["own_evaluation"]["mrr@20"], abs=1e-6)


def test_authors_adapter_without_a_checkout_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("GRU4REC_ADAPTER_OPTIONS", raising=False)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "authors_adapter", external.EXTERNAL_DIR / "authors" / "adapter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # the adapter imports adapter_common as a top-level module (as in its own environment)
    with pytest.raises(mod.ac.AdapterError, match="external.authors.checkout"):
        mod.checkout_dir()
    monkeypatch.setenv("GRU4REC_ADAPTER_OPTIONS", json.dumps({"checkout": str(tmp_path)}))
    with pytest.raises(mod.ac.AdapterError, match="no gru4rec_pytorch.py"):
        mod.checkout_dir()


# --------------------------------------------------------------------------- the audit table


def fake_ranks(hits_per_session, sessions=range(1, 201)):
    """Two events per session; an event is a hit (rank 1) for the first ``hits`` sessions' events."""
    rows = []
    for s in sessions:
        for pos in (0, 1):
            hit = s <= hits_per_session
            rows.append((s, pos, 100 + pos, 0 if hit else 50, 0))
    return record(rows).astype({"session_id": "int64", "position": "int32", "target": "int64",
                                "higher": "int64", "ties": "int64"})


def write_fake_run(root: Path, run: str, seed: int, ranks: pd.DataFrame, seconds: list[float], info=None):
    from gru4rec_repro import atomic
    from gru4rec_repro.evaluation import metrics_from_ranks

    d = root / "runs" / run / f"seed{seed}"
    atomic.write_parquet(ranks, d / "ranks.parquet")
    atomic.write_json(metrics_from_ranks(ranks), d / "metrics.json")
    atomic.write_text("".join(json.dumps({"epoch": i + 1, "loss": 1.0, "seconds": s}) + "\n"
                              for i, s in enumerate(seconds)), d / "train_log.jsonl")
    if info is not None:
        atomic.write_json(info, d / "adapter_info.json")


def test_audit_table_compares_with_ours_and_says_when_the_authors_code_is_missing(tmp_path):
    from gru4rec_repro.tables import build_table

    info = {"library": "recbole", "version": "1.2.1", "seconds_per_epoch": [6.0], "seconds_total": 7.0,
            "not_expressed": {"momentum": "no momentum", "logq": "no logQ"}, "translated": {}}
    for seed in (1, 2):
        # ours: sessions 1..120 hit (R@20 = 0.6); RecBole: sessions 1..80 hit (R@20 = 0.4)
        write_fake_run(tmp_path, "torch-xe", seed, fake_ranks(120), [2.0, 2.0])
        write_fake_run(tmp_path, "recbole-xe", seed, fake_ranks(80), [6.0], info)
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch", "params": {}},
                       "recbole-xe": {"implementation": "recbole", "params": {}}},
              "seeds": [1, 2], "study": {"n_boot": 200, "equivalence_margin": 0.02}}
    table = build_table("audit", tmp_path, config, "tiny")
    data = table.data.set_index("metric")
    r = data.loc["recall@20"]
    assert r["reference"] == "torch-xe" and r["library"] == "recbole 1.2.1"
    assert r["mean"] == pytest.approx(0.4) and r["ref_mean"] == pytest.approx(0.6)
    assert r["diff"] == pytest.approx(-0.2)
    assert r["ci_low"] < -0.2 < r["ci_high"] < 0
    assert r["verdict"] == "different"
    assert r["s_per_epoch_ratio"] == pytest.approx(3.0)
    assert r["not_expressed"] == "logq, momentum"
    assert ("Not expressed by recbole 1.2.1 (recbole-xe, from its adapter_info.json): momentum: no momentum; "
            "logq: no logQ.") in " ".join(table.notes)
    assert data.loc["mrr@20", "diff"] == pytest.approx(-0.2)  # rank 1 or beyond 20: MRR = recall
    notes = " ".join(table.notes)
    # no record of the workflow's (a table built by hand): it says what it knows, no run of the authors' code
    assert "No run of the authors' official code ('authors-<setting>') for setting(s) xe" in notes
    assert "recbole-xe is compared with ours only" in notes
    # the setting both sides trained, checked and printed
    assert "Same setting 'xe' on both sides of every row, checked" in notes
    assert "recbole-xe = torch-xe (recbole-xe: the config's params; torch-xe: the config's params)" in notes
    assert "Feature checklist of recbole 1.2.1" in notes
    assert "bpr_max: no (model/sequential_recommender/gru4rec.py:61-66)" in notes


def test_audit_table_against_the_authors_code_and_ours(tmp_path):
    from gru4rec_repro.tables import build_table

    for seed in (1, 2):
        write_fake_run(tmp_path, "torch-xe", seed, fake_ranks(100), [1.0])
        write_fake_run(tmp_path, "authors-xe", seed, fake_ranks(100), [0.5],
                       {"library": "GRU4Rec_PyTorch_Official", "version": "commit d1fc311", "seconds_per_epoch": [0.5],
                        "seconds_total": 1.0, "not_expressed": {}, "translated": {}})
        write_fake_run(tmp_path, "recbole-xe", seed, fake_ranks(100), [5.0],
                       {"library": "recbole", "version": "1.2.1", "seconds_per_epoch": [5.0],
                        "seconds_total": 6.0, "not_expressed": {}, "translated": {}})
    config = {"runs": {r: {"implementation": i} for r, i in
                       (("torch-xe", "gru4rec_torch"), ("authors-xe", "authors"), ("recbole-xe", "recbole"))},
              "seeds": [1, 2], "study": {"n_boot": 200}}
    data = build_table("audit", tmp_path, config, "tiny").data
    pairs = list(zip(data["run"], data["reference"]))[::2]
    assert pairs == [("authors-xe", "torch-xe"), ("recbole-xe", "authors-xe"), ("recbole-xe", "torch-xe")]
    assert (data["diff"] == 0).all() and set(data["verdict"]) == {"equivalent"}
    assert data.loc[data["reference"] == "authors-xe", "s_per_epoch_ratio"].iloc[0] == pytest.approx(10.0)


def test_audit_table_without_external_runs_is_empty_with_a_note(tmp_path):
    from gru4rec_repro.tables import build_table

    write_fake_run(tmp_path, "torch-xe", 1, fake_ranks(100), [1.0])
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch"}}, "seeds": [1]}
    table = build_table("audit", tmp_path, config, "tiny")
    assert table.data.empty and "No run of this table" in table.notes[0]


def test_workflow_settings_add_the_panel_and_leave_out_the_unconfigured_authors_code():
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch", "params": {"n_epochs": 10}},
                       "authors-xe": {"implementation": "authors", "params": {"n_epochs": 10}},
                       "recbole-xe": {"implementation": "recbole", "params": {"n_epochs": 10}}},
              "study": {"epochs": 3},
              "external": {"panel": ["authors-xe", "recbole-xe"]}}
    assert external.study_runs(config, ["torch-xe"]) == (["torch-xe", "recbole-xe"], ["authors-xe"])
    assert external.workflow_options(config) == "{}"
    config["external"]["authors"] = {"checkout": "/x/GRU4Rec_PyTorch_Official"}
    assert external.study_runs(config, ["torch-xe"]) == (["torch-xe", "authors-xe", "recbole-xe"], [])
    assert json.loads(external.workflow_options(config)) == {"authors": {"checkout": "/x/GRU4Rec_PyTorch_Official"}}
    assert run_params(config, "recbole-xe") == {"n_epochs": 3}  # study.epochs, as torch-xe
    config["external"]["panel"] = ["nope"]
    with pytest.raises(ValueError, match="external.panel names 'nope'"):
        external.study_runs(config, [])


# --------------------------------------------------------------------------- the same setting on both sides


ROOT = Path(__file__).resolve().parent.parent


def test_tiny_study_with_the_audit_config_gives_the_panel_the_tiny_settings():
    """config/test.yaml + config/audit.yaml: torch-xe trains n_sample 64, and so does every panel run."""
    from gru4rec_repro.plan import load_config

    config = load_config([ROOT / "config/test.yaml", ROOT / "config/audit.yaml"])
    runs, left_out = external.study_runs(config, config["study"]["runs"])
    assert left_out == ["authors-xe"] and "recbole-xe" in runs and "torch_rechub-xe" in runs
    ours = external.resolved_setting(run_params(config, "torch-xe"))
    assert ours["n_sample"] == 64 and ours["n_epochs"] == 1
    for run in ("recbole-xe", "cornac-xe", "recpack-xe", "torch_rechub-xe"):
        assert external.resolved_setting(run_params(config, run)) == ours, run
    assert config["study"][external.AUTHORS_NOTE_KEY] == {"checkout": False, "left_out": ["authors-xe"]}
    # the same files in the other order: the same settings (derived after every override)
    config = load_config([ROOT / "config/audit.yaml", ROOT / "config/test.yaml"])
    external.study_runs(config, config["study"]["runs"])
    assert external.resolved_setting(run_params(config, "cornac-xe"))["n_sample"] == 64


def test_panel_with_its_own_params_that_differ_from_ours_is_refused_naming_the_keys():
    from gru4rec_repro.plan import load_config

    config = load_config([ROOT / "config/test.yaml", ROOT / "config/audit.yaml"])
    config["external"]["params_from_ours"] = False
    xe = dict(load_config([])["runs"]["torch-xe"]["params"])  # the panel's former params: n_sample 2048
    for run in config["external"]["panel"]:
        config["runs"][run]["params"] = dict(xe)
    with pytest.raises(ValueError, match=r"recbole-xe and torch-xe, which the audit table compares, train "
                                         r"different settings: n_sample 2048 vs 64 \(recbole-xe vs torch-xe\)"):
        external.study_runs(config, config["study"]["runs"])
    # equal params: accepted without deriving
    for run in config["external"]["panel"]:
        config["runs"][run]["params"] = dict(xe, n_sample=64)
    external.study_runs(config, config["study"]["runs"])
    # deriving while the run gives params of its own: refused
    config["external"]["params_from_ours"] = True
    with pytest.raises(ValueError, match=r"runs.recbole-xe.params is given, but external.params_from_ours"):
        external.study_runs(config, config["study"]["runs"])


def test_deriving_needs_the_comparison_run_and_drops_our_own_keys():
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch",
                                    "params": {"loss": "cross-entropy", "n_sample": 64, "variant": "gru4rec"}},
                       "cornac-xe": {"implementation": "cornac", "params": {}},
                       "cornac-bpr": {"implementation": "cornac", "params": {}}},
              "study": {}, "external": {"panel": ["cornac-xe"], "params_from_ours": True}}
    external.study_runs(config, ["torch-xe"])
    assert config["runs"]["cornac-xe"]["params"] == {"loss": "cross-entropy", "n_sample": 64}
    config["external"]["panel"] = ["cornac-bpr"]
    with pytest.raises(ValueError, match="'cornac-bpr' has no run 'torch-bpr'"):
        external.study_runs(config, ["torch-xe"])


def test_audit_table_refuses_runs_that_recorded_different_settings(tmp_path):
    """The table's own guard: the settings each seed recorded (adapter_info.json, run_info.json)."""
    from gru4rec_repro import atomic
    from gru4rec_repro.tables import build_table

    xe = {"loss": "cross-entropy", "layers": [100], "batch_size": 32, "n_sample": 64, "n_epochs": 1}
    info = {"library": "cornac", "version": "3.0.1", "seconds_per_epoch": [1.0], "seconds_total": 1.0,
            "not_expressed": {}, "translated": {}, "params_resolved": resolve_params(dict(xe, n_sample=2048))}
    for seed in (1, 2):
        write_fake_run(tmp_path, "torch-xe", seed, fake_ranks(100), [1.0])
        atomic.write_json({"params": xe}, tmp_path / "runs" / "torch-xe" / f"seed{seed}" / "run_info.json")
        write_fake_run(tmp_path, "cornac-xe", seed, fake_ranks(90), [2.0], info)
    # the config says both have the same params: the recorded settings decide
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch", "params": xe},
                       "cornac-xe": {"implementation": "cornac", "params": xe}},
              "seeds": [1, 2], "study": {"n_boot": 50}}
    with pytest.raises(ValueError, match=r"cornac-xe and torch-xe trained different settings, so the table does "
                                         r"not compare them: n_sample 2048 vs 64"):
        build_table("audit", tmp_path, config, "tiny")
    for seed in (1, 2):
        atomic.write_json(dict(info, params_resolved=resolve_params(xe)),
                          tmp_path / "runs" / "cornac-xe" / f"seed{seed}" / "adapter_info.json")
    notes = " ".join(build_table("audit", tmp_path, config, "tiny").notes)
    assert ("cornac-xe = torch-xe (cornac-xe: adapter_info.json params_resolved; torch-xe: run_info.json params)"
            in notes)
    assert "n_sample 64" in notes and "batch_size 32" in notes and "n_epochs 1" in notes


def resolve_params(params):
    from gru4rec_repro.gru4rec_params import resolve as resolve_gru4rec

    return resolve_gru4rec(params)


@pytest.mark.parametrize("record, says", [
    (None, "No run of the authors' official code ('authors-<setting>') for setting(s) xe is in this study's config"),
    ({"checkout": False, "left_out": ["authors-xe"]},
     "The authors' official code is not configured in this study (external.authors.checkout is not set; "
     "left out: authors-xe)"),
    ({"checkout": True, "left_out": []},
     "The authors' official code is configured (external.authors.checkout), but the study has no run of it "
     "('authors-<setting>') for setting(s) xe"),
])
def test_audit_note_on_the_authors_code_says_what_is_missing(tmp_path, record, says):
    from gru4rec_repro.tables import build_table

    for seed in (1,):
        write_fake_run(tmp_path, "torch-xe", seed, fake_ranks(100), [1.0])
        write_fake_run(tmp_path, "recpack-xe", seed, fake_ranks(100), [1.0],
                       {"library": "recpack", "version": "0.3.6", "seconds_per_epoch": [1.0], "seconds_total": 1.0,
                        "not_expressed": {}, "translated": {}})
    study = {"n_boot": 50, **({external.AUTHORS_NOTE_KEY: record} if record is not None else {})}
    config = {"runs": {"torch-xe": {"implementation": "gru4rec_torch"}, "recpack-xe": {"implementation": "recpack"}},
              "seeds": [1], "study": study}
    notes = " ".join(build_table("audit", tmp_path, config, "tiny").notes)
    assert says in notes
    assert ("not configured" in notes) == (record is not None and not record["checkout"])
