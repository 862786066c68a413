"""What every external adapter shares: arguments, the split, the item index, ranking, outputs.

An external implementation (a library's GRU4Rec, the authors' own code) runs
in its own Python environment, where numpy and pandas may be other versions
than the project's and the project itself is not importable. This module is
therefore standalone: numpy, pandas and the standard library only. An adapter
imports it with its own folder's parent on ``sys.path``::

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import adapter_common as ac

The command line of every adapter (``implementations/external/<name>/adapter.py``)::

    python adapter.py --train TRAIN.tsv --test TEST.tsv --params PARAMS.json --seed S --out DIR

It trains on ``TRAIN.tsv`` (official format: ``SessionId<TAB>ItemId<TAB>Time``,
header line), then walks every test session and, for each of its events but
the last, scores ALL training items and counts the items above and tied with
the next item (the target). The outputs are ``DIR/ranks.csv`` (the contract's
columns, implementations/CONTRACT.md) and ``DIR/adapter_info.json``.

Test events whose item is not in train are dropped before the walk, exactly
as every implementation of the project does; ``position`` counts the kept
events of a session from 0.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

#: Columns of ``ranks.csv`` (implementations/CONTRACT.md), in order, with dtypes.
RANK_COLUMNS = {
    "session_id": "int64",
    "position": "int32",
    "target": "int64",
    "higher": "int64",
    "ties": "int64",
}

#: Keys ``adapter_info.json`` must have.
INFO_KEYS = ("library", "version", "seconds_per_epoch", "seconds_total", "not_expressed", "translated")

SPLIT_COLUMNS = ("SessionId", "ItemId", "Time")
SPLIT_DTYPES = {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}


class AdapterError(RuntimeError):
    """A problem an adapter reports to the user (bad input, a setting it refuses)."""


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """The adapter command line, checked.

    Returns a namespace with ``train``, ``test``, ``out`` (Path; ``out`` is
    created), ``params`` (the dict read from the ``--params`` JSON file),
    ``params_path`` (Path) and ``seed`` (int).
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--train", required=True, type=Path, help="training split (TSV with header)")
    p.add_argument("--test", required=True, type=Path, help="test split (TSV with header)")
    p.add_argument("--params", required=True, type=Path, help="JSON file: the run's GRU4Rec parameters")
    p.add_argument("--seed", required=True, type=int, help="seed of every random step")
    p.add_argument("--out", required=True, type=Path, help="output folder (ranks.csv, adapter_info.json)")
    args = p.parse_args(argv)
    args.params_path = args.params
    try:
        params = json.loads(args.params_path.read_text())
    except FileNotFoundError:
        raise AdapterError(f"{args.params_path}: no such parameter file") from None
    except json.JSONDecodeError as e:
        raise AdapterError(f"{args.params_path}: not valid JSON ({e})") from None
    if not isinstance(params, dict):
        raise AdapterError(f"{args.params_path}: expected a JSON object of parameters, got {type(params).__name__}")
    args.params = params
    args.out.mkdir(parents=True, exist_ok=True)
    return args


# --------------------------------------------------------------------------- the split


def read_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read an official TSV split: ``SessionId``, ``ItemId``, ``Time``; sorted by (SessionId, Time).

    The sort is stable, so events with the same time keep the file's order.
    """
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"{path}: no such split file")
    df = pd.read_csv(path, sep="\t")
    missing = [c for c in SPLIT_COLUMNS if c not in df.columns]
    if missing:
        raise AdapterError(
            f"{path}: missing column(s) {missing} in the header line; expected {list(SPLIT_COLUMNS)} "
            f"separated by tabs, got {list(df.columns)}"
        )
    try:
        df = df[list(SPLIT_COLUMNS)].astype(SPLIT_DTYPES)
    except (ValueError, TypeError) as e:
        raise AdapterError(f"{path}: a column is not numeric ({e})") from None
    return df.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)


class ItemIndex:
    """The item index: training items in ascending ``ItemId`` order (implementations/GRU4REC_API.md).

    ``item_ids[i]`` is the ItemId of item ``i``; ``support[i]`` its number of
    training events. Build it from the training split (or any ItemId array).
    """

    def __init__(self, train: pd.DataFrame | np.ndarray):
        ids = train["ItemId"].to_numpy(np.int64) if isinstance(train, pd.DataFrame) else np.asarray(train, np.int64)
        if ids.size == 0:
            raise AdapterError("the training split has no events: no item index")
        self.item_ids, counts = np.unique(ids, return_counts=True)
        self.support = counts.astype(np.int64)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def contains(self, ids) -> np.ndarray:
        """Boolean mask: which ItemIds are training items."""
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(self.item_ids, ids)
        pos = np.minimum(pos, len(self.item_ids) - 1)
        return self.item_ids[pos] == ids

    def to_index(self, ids) -> np.ndarray:
        """ItemIds -> item indices; an ItemId that is not a training item is an error."""
        ids = np.asarray(ids, np.int64)
        known = self.contains(ids)
        if not known.all():
            raise KeyError(f"{int((~known).sum())} ItemId(s) not in the item index, e.g. {ids[~known][:5].tolist()}")
        return np.searchsorted(self.item_ids, ids).astype(np.int64)

    def to_ids(self, idx) -> np.ndarray:
        """Item indices -> ItemIds."""
        return self.item_ids[np.asarray(idx, np.int64)]


@dataclass
class PredictionEvents:
    """The test split's prediction events, in (SessionId, Time) order.

    For event ``k``: the session so far is ``item_idx[start[k]:end[k]]`` (its
    last element is the input), the target is ``target_idx[k]``.
    ``frame`` holds ``session_id``, ``position``, ``target`` (ItemId) per event.
    """

    item_idx: np.ndarray  # (n_kept_test_events,) item index of every kept test event
    start: np.ndarray  # (n_events,) index into item_idx of the session's first event
    end: np.ndarray  # (n_events,) one past the input event
    target_idx: np.ndarray  # (n_events,)
    frame: pd.DataFrame  # session_id, position, target
    dropped: int  # test events dropped because their item is not in train

    def __len__(self) -> int:
        return len(self.target_idx)

    @property
    def input_idx(self) -> np.ndarray:
        return self.item_idx[self.end - 1]

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.start

    @property
    def sessions(self) -> tuple[np.ndarray, np.ndarray]:
        """The events grouped by test session: (row of each session's first event, its number of events).

        A session's events are consecutive rows (they share ``start``), in the
        order of the split.
        """
        first = np.flatnonzero(np.diff(self.start, prepend=-1) != 0)
        return first, np.diff(np.append(first, len(self))).astype(np.int64)

    def history(self, k: int, max_len: int | None = None) -> np.ndarray:
        """The session so far of event ``k`` (item indices), the last ``max_len`` of them."""
        s, e = int(self.start[k]), int(self.end[k])
        if max_len is not None:
            s = max(s, e - max_len)
        return self.item_idx[s:e]

    def padded(self, rows, max_len: int, *, pad: int = 0, offset: int = 0,
               align: str = "left") -> tuple[np.ndarray, np.ndarray]:
        """Histories of ``rows`` as a ``(len(rows), max_len)`` int64 matrix and their lengths.

        Each history keeps its last ``max_len`` items; ``offset`` is added to
        every item index (e.g. 1 where a library reserves 0 for padding) and
        the rest of the row is ``pad``. ``align="left"``: items first, padding
        after (RecBole's ``item_id_list``); ``"right"``: padding first.
        """
        if align not in ("left", "right"):
            raise ValueError(f"align must be 'left' or 'right', got {align!r}")
        rows = np.asarray(rows, np.int64)
        end = self.end[rows]
        start = np.maximum(self.start[rows], end - max_len)
        lengths = end - start
        out = np.full((len(rows), max_len), pad, dtype=np.int64)
        col = np.arange(max_len)[None, :]
        src = (start[:, None] + col) if align == "left" else (end[:, None] - max_len + col)
        valid = (col < lengths[:, None]) if align == "left" else (col >= max_len - lengths[:, None])
        out[valid] = self.item_idx[src[valid]] + offset
        return out, lengths


def prediction_events(test: pd.DataFrame, index: ItemIndex) -> PredictionEvents:
    """The prediction events of ``test`` (sorted by SessionId, Time), as every model defines them.

    Test events whose item is not in train are dropped first; then every kept
    event that has a next event in its session is an input, and that next
    event is its target.
    """
    items = test["ItemId"].to_numpy(np.int64)
    known = index.contains(items)
    sessions = test["SessionId"].to_numpy(np.int64)[known]
    item_idx = index.to_index(items[known])
    n = len(item_idx)
    new_session = np.ones(n, dtype=bool)
    new_session[1:] = sessions[1:] != sessions[:-1]
    first = np.flatnonzero(new_session)
    session_start = first[np.cumsum(new_session) - 1] if n else np.zeros(0, np.int64)
    has_next = np.zeros(n, dtype=bool)
    has_next[:-1] = ~new_session[1:]
    inputs = np.flatnonzero(has_next)
    frame = pd.DataFrame({
        "session_id": sessions[inputs],
        "position": (inputs - session_start[inputs]).astype(np.int32),
        "target": index.item_ids[item_idx[inputs + 1]],
    })
    return PredictionEvents(
        item_idx=item_idx, start=session_start[inputs].astype(np.int64), end=(inputs + 1).astype(np.int64),
        target_idx=item_idx[inputs + 1], frame=frame, dropped=int((~known).sum()),
    )


def read_inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, ItemIndex, PredictionEvents]:
    """What every adapter starts from: the ``--train`` and ``--test`` splits, the item
    index of train and the test's prediction events."""
    train = read_split(args.train)
    test = read_split(args.test)
    index = ItemIndex(train)
    return train, test, index, prediction_events(test, index)


def set_torch_threads(torch) -> None:
    """Give torch the job's thread count (``OMP_NUM_THREADS``, which the runner pins), when set."""
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def seed_everything(torch, seed: int) -> str:
    """Seed Python's, numpy's global and torch's RNGs with the run's seed; return the device
    ("cuda" when torch sees a GPU, else "cpu"). Libraries with RNGs of their own seed them too."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_main(main, name: str) -> None:
    """Run an adapter's ``main``; an :class:`AdapterError` ends it with one line naming the adapter."""
    import sys

    try:
        main()
    except AdapterError as e:
        sys.exit(f"{name} adapter: {e}")


# --------------------------------------------------------------------------- ranking


def rank_counts(scores, target_idx) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (B, n_items): items scoring strictly above the target, and other items tied with it.

    ``target_idx`` (B,): the target's column in each row. A target whose score
    is NaN is an error (its rank would be undefined).
    """
    scores = np.asarray(scores)
    target_idx = np.asarray(target_idx, np.int64)
    if scores.ndim != 2 or scores.shape[0] != len(target_idx):
        raise ValueError(f"rank_counts: scores of shape {scores.shape} for {len(target_idx)} targets")
    t = scores[np.arange(len(target_idx)), target_idx][:, None]
    if np.isnan(t).any():
        raise ValueError(f"rank_counts: {int(np.isnan(t).sum())} target score(s) are NaN")
    higher = np.count_nonzero(scores > t, axis=1)
    ties = np.count_nonzero(scores == t, axis=1) - 1
    return higher.astype(np.int64), ties.astype(np.int64)


def rank_record(events: PredictionEvents, higher, ties) -> pd.DataFrame:
    """The contract's rank record of ``events`` given their two counts."""
    out = events.frame.assign(higher=np.asarray(higher, np.int64), ties=np.asarray(ties, np.int64))
    return out[list(RANK_COLUMNS)].astype(RANK_COLUMNS)


def rank_blocks(events: PredictionEvents, step: int, score_rows) -> tuple[np.ndarray, np.ndarray]:
    """The two counts of every event, scored ``step`` consecutive events at a time.

    ``score_rows(rows)`` returns the scores of the events ``rows`` (an int64
    array of row numbers) against all training items, as a numpy array of
    shape ``(len(rows), n_items)`` (column ``i``: item ``i`` of the index).
    """
    step = int(step)
    if step < 1:
        raise ValueError(f"rank_blocks: step must be >= 1, got {step}")
    higher = np.zeros(len(events), np.int64)
    ties = np.zeros(len(events), np.int64)
    for start in range(0, len(events), step):
        rows = np.arange(start, min(start + step, len(events)))
        higher[rows], ties[rows] = rank_counts(score_rows(rows), events.target_idx[rows])
    return higher, ties


# --------------------------------------------------------------------------- parameters


_MISSING = object()
#: Values of a numeric or boolean parameter that leave its feature off (:meth:`Translation.absent`).
OFF = (0, 0.0, False, None)
#: Values of ``final_act`` that ask for no activation.
LINEAR = (None, "linear")


class Translation:
    """Which of the run's GRU4Rec parameters became which library setting, and which could not.

    Every parameter of the run must end up in ``translated`` (library setting
    -> value), ``not_expressed`` (our parameter -> why the library cannot do
    it) or ``implicit`` (our parameter -> why its value needs no setting: the
    library already behaves so, or the value has no effect with the run's
    loss); :meth:`check_complete` fails on any parameter left unaccounted
    for, so nothing is dropped silently. ``info()`` gives the three dicts for
    ``adapter_info.json``.
    """

    def __init__(self, params: dict):
        self.params = dict(params)
        self.translated: dict[str, object] = {}
        self.not_expressed: dict[str, str] = {}
        self.implicit: dict[str, str] = {}
        self._seen: set[str] = set()

    def get(self, key: str, default=None):
        return self.params.get(key, default)

    def use(self, key: str, setting: str | None = None, value=_MISSING) -> object:
        """Record that parameter ``key`` sets the library's ``setting`` to ``value``
        (default: the parameter's own name and value); return the value."""
        if value is _MISSING:
            value = self.params.get(key)
        self.translated[setting or key] = value
        self._seen.add(key)
        return value

    def also(self, setting: str, value) -> object:
        """Record a library setting the adapter fixes itself (no parameter of ours behind it)."""
        self.translated[setting] = value
        return value

    def cannot(self, key: str, why: str) -> None:
        """Record that parameter ``key`` cannot be expressed in the library, and why."""
        value = self.params.get(key)
        self.not_expressed[key] = f"{why} (run's value: {json.dumps(value)})"
        self._seen.add(key)

    def differs(self, label: str, why: str, value=_MISSING) -> None:
        """Record what the library does differently although the parameters behind it are
        translated (e.g. where a translated dropout applies, how a loss is normalised): listed
        with what cannot be expressed, under ``label`` (``<parameter>.<aspect>``, or a name of
        its own for a behaviour no parameter sets); ``value``: what GRU4Rec does, shown as the
        run's value (default: the run's value of the parameter ``label`` starts with)."""
        if value is _MISSING:
            value = self.params.get(label.split(".", 1)[0])
        self.not_expressed[label] = f"{why} (run's value: {json.dumps(value)})"

    def no_setting(self, key: str, why: str) -> None:
        """Record that parameter ``key``'s value needs no library setting, and why."""
        self.implicit[key] = f"{why} (run's value: {json.dumps(self.params.get(key))})"
        self._seen.add(key)

    def absent(self, key: str, why: str, *, why_off: str | None = None, off=OFF) -> None:
        """Parameter ``key``'s feature, which the library lacks: a run that asks for it
        (a value not in ``off``) cannot be expressed (:meth:`cannot`, ``why``); a run that
        leaves it off needs no setting (:meth:`no_setting`, ``why_off``, default ``why``)."""
        if self.params.get(key) in off:
            self.no_setting(key, why if why_off is None else why_off)
        else:
            self.cannot(key, why)

    @property
    def one_hot(self) -> bool:
        """Whether the run asks for one-hot input (no constrained embedding, ``embedding`` 0)."""
        return not self.params.get("constrained_embedding") and not self.params.get("embedding")

    def no_one_hot_input(self, library: str) -> None:
        """``onehot_dropout`` in a library that always embeds its items: a run with one-hot
        input cannot be expressed; otherwise the parameter does not apply."""
        if self.one_hot:
            self.cannot("onehot_dropout", f"no one-hot input in {library}")
        else:
            self.no_setting("onehot_dropout", "applies to one-hot input only")

    def covered(self, *keys: str) -> None:
        """Mark parameters as accounted for by settings already recorded (e.g. two keys, one setting)."""
        self._seen.update(keys)

    def check_complete(self) -> None:
        left = sorted(set(self.params) - self._seen)
        if left:
            raise AdapterError(f"adapter left parameter(s) {left} neither translated nor listed as not expressed")

    def info(self) -> dict:
        """``translated``, ``not_expressed`` and ``implicit`` for ``adapter_info.json`` (checked complete)."""
        self.check_complete()
        return {"translated": dict(self.translated), "not_expressed": dict(self.not_expressed),
                "implicit": dict(self.implicit)}


# --------------------------------------------------------------------------- timing and outputs


class Timer:
    """Seconds per epoch and in total (wall clock).

    Either ``with timer.epoch(): ...`` around each epoch, or ``timer.lap()`` at
    the end of each epoch (the time since the previous lap, or since
    :meth:`start`), e.g. from a library's per-epoch callback.
    """

    def __init__(self):
        self.t0 = time.perf_counter()
        self._last = self.t0
        self.seconds_per_epoch: list[float] = []

    def start(self) -> None:
        """Start timing epochs now (the first lap counts from here)."""
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds = now - self._last
        self._last = now
        self.seconds_per_epoch.append(seconds)
        return seconds

    @contextmanager
    def epoch(self) -> Iterator[None]:
        self.start()
        yield
        self.lap()

    @property
    def seconds_total(self) -> float:
        return time.perf_counter() - self.t0


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_outputs(out: str | os.PathLike, ranks: pd.DataFrame, info: dict) -> None:
    """Write ``out/ranks.csv`` and ``out/adapter_info.json`` (atomically, ranks first).

    ``ranks`` must have the contract's columns; ``info`` the keys of
    :data:`INFO_KEYS` (``seconds_per_epoch`` a list, ``not_expressed`` and
    ``translated`` dicts); other keys are kept.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = [c for c in RANK_COLUMNS if c not in ranks.columns]
    if missing:
        raise AdapterError(f"rank record: missing column(s) {missing}; expected {list(RANK_COLUMNS)}")
    ranks = ranks[list(RANK_COLUMNS)].astype(RANK_COLUMNS)
    if ((ranks["higher"] < 0) | (ranks["ties"] < 0)).any():
        raise AdapterError("rank record: negative 'higher' or 'ties' counts")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise AdapterError(f"adapter_info: missing key(s) {missing}; required {list(INFO_KEYS)}")
    for key, kind in (("seconds_per_epoch", list), ("not_expressed", dict), ("translated", dict)):
        if not isinstance(info[key], kind):
            raise AdapterError(f"adapter_info: {key!r} must be a {kind.__name__}, got {type(info[key]).__name__}")
    info = dict(info, seconds_per_epoch=[float(s) for s in info["seconds_per_epoch"]],
                seconds_total=float(info["seconds_total"]))
    text = json.dumps(info, indent=2, default=str) + "\n"
    _atomic_write(out / "ranks.csv", lambda p: ranks.to_csv(p, index=False))
    _atomic_write(out / "adapter_info.json", lambda p: p.write_text(text))


def finish(out: str | os.PathLike, events: PredictionEvents, higher, ties, *, library: str, version: str,
           timer: Timer, translation: Translation, seconds_per_epoch: list | None = None, **extra) -> None:
    """The end of every adapter: the rank record of ``events`` from their two counts, and
    ``adapter_info.json``, written by :func:`write_outputs` to ``out``.

    The info holds ``library``, ``version``, the timer's seconds per epoch (or
    ``seconds_per_epoch`` when the library reports its own) and total, the
    translation record (:meth:`Translation.info`), ``extra`` and
    ``dropped_test_events``.
    """
    ranks = rank_record(events, higher, ties)
    write_outputs(out, ranks, {
        "library": library,
        "version": version,
        "seconds_per_epoch": timer.seconds_per_epoch if seconds_per_epoch is None else seconds_per_epoch,
        "seconds_total": timer.seconds_total,
        **translation.info(),
        **extra,
        "dropped_test_events": events.dropped,
    })
