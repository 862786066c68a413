"""The synthetic clicks generator: format, determinism, RSC15-like statistics."""
import re

import numpy as np
import pytest

from gru4rec_repro.data import synthetic
from gru4rec_repro.data.clicks import read_clicks
from gru4rec_repro.dwell import dwell_times
from gru4rec_repro.split import official_split

LINE = re.compile(r"^\d+,\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z,\d+,(S|\d+)$")


def small(path, seed=0, **kw):
    synthetic.generate(path, n_sessions=400, n_items=120, n_days=4, seed=seed, progress=False, **kw)
    return path


def test_yoochoose_format(tmp_path):
    lines = small(tmp_path / "c.dat").read_text().splitlines()
    assert all(LINE.match(line) for line in lines), [l for l in lines if not LINE.match(l)][:3]
    clicks = read_clicks(tmp_path / "c.dat")
    assert len(clicks) == len(lines)
    assert clicks["SessionId"].min() == 1 and clicks["SessionId"].max() == 400
    # sorted by session, then time, and session ids follow start time
    assert (np.diff(clicks["SessionId"]) >= 0).all()
    first = clicks.groupby("SessionId")["Time"].min().to_numpy()
    assert (np.diff(first) >= 0).all()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = small(tmp_path / "a.dat", seed=7).read_bytes()
    b = small(tmp_path / "b.dat", seed=7).read_bytes()
    c = small(tmp_path / "c.dat", seed=8).read_bytes()
    assert a == b
    assert a != c


def test_parameters_are_checked(tmp_path):
    with pytest.raises(TypeError, match="unknown"):
        small(tmp_path / "x.dat", p_nonsense=1)
    with pytest.raises(ValueError, match="p_transition"):
        small(tmp_path / "x.dat", p_transition=0.9)
    assert not (tmp_path / "x.dat").exists()


def test_cli_writes_the_file(tmp_path):
    synthetic.main(["--out", str(tmp_path / "cli.dat"), "--sessions", "50", "--items", "30",
                    "--days", "3", "--set", "p_noise=0.3", "--no-progress"])
    assert len(read_clicks(tmp_path / "cli.dat")) > 50


@pytest.fixture(scope="module")
def default_split(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "clicks.dat"
    synthetic.generate(path, progress=False)  # the study's default size
    clicks = read_clicks(path)
    return clicks, official_split(clicks)


def test_default_size_fits_the_study(default_split):
    clicks, splits = default_split
    assert 25_000 <= len(splits["train_full"]) + len(splits["test"]) <= 35_000
    assert 500 <= splits["train_full"]["ItemId"].nunique() <= 1000
    assert len(splits["test"]) >= 2_000  # a few thousand test events
    span_days = (clicks["Time"].max() - clicks["Time"].min()) / 86400
    assert 6 < span_days <= 7.1
    # preprocessing has something to drop: length-1 sessions and rare items
    lengths = clicks.groupby("SessionId").size()
    assert 0.05 < (lengths == 1).mean() < 0.25
    support = clicks["ItemId"].value_counts()
    assert (support < 5).sum() > 50


def test_statistics_look_like_rsc15(default_split):
    _, splits = default_split
    train = splits["train_full"]
    lengths = train.groupby("SessionId").size()
    assert 0.35 <= (lengths == 2).mean() <= 0.47
    assert 3.5 <= lengths.mean() <= 4.8
    same = train["SessionId"].to_numpy()[1:] == train["SessionId"].to_numpy()[:-1]
    items = train["ItemId"].to_numpy()
    assert 0.12 <= (items[1:][same] == items[:-1][same]).mean() <= 0.28  # immediate repeats
    dwell = dwell_times(train)[np.append(same, False)]
    assert 45 <= np.median(dwell) <= 70
    assert np.percentile(dwell, 99) > 1000  # heavy tail


def test_whole_session_beats_the_last_item(default_split):
    """The next item depends on more than the last click: after a distraction
    (an off-intent item) the session goes on from its last on-intent item."""
    _, splits = default_split
    train = splits["train_full"]
    sid, items = train["SessionId"].to_numpy(), train["ItemId"].to_numpy()
    # successor counts item -> next item, from training transitions
    same = sid[1:] == sid[:-1]
    pairs = np.stack([items[:-1][same], items[1:][same]], axis=1)
    counts = {}
    for a, b in pairs:
        counts.setdefault(a, {}).setdefault(b, 0)
        counts[a][b] += 1
    def top(a, k=5):
        c = counts.get(a, {})
        return set(sorted(c, key=c.get, reverse=True)[:k])
    # among triples x, y, z with y != x: how often z is a favourite successor of
    # the item two steps back vs. a random item (the chance level)
    hits_two_back, n = 0, 0
    for s in range(2, len(items)):
        if sid[s] == sid[s - 1] == sid[s - 2] and items[s - 1] != items[s - 2] and items[s] != items[s - 1]:
            n += 1
            hits_two_back += items[s] in top(items[s - 2])
    chance = 5 / len(np.unique(items))
    assert n > 500
    assert hits_two_back / n > 5 * chance
