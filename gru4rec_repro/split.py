"""The official GRU4Rec preprocessing and last-day split (SPEC.md section 2).

On a clicks frame (``SessionId, ItemId, Time`` with Time in unix seconds):

1. Time is already parsed to unix seconds (float) by the reader;
2. drop sessions of length 1;
3. drop items with fewer than 5 events;
4. drop sessions of length < 2 (again: step 3 shortens sessions);
5. test = sessions whose LAST event is within the final 86,400 s of the data
   (``session_max_time >= tmax - 86400``); train = all other sessions;
6. from test drop events whose item is not in train, then test sessions
   shorter than 2;
7. the validation split repeats 5-6 on train: train_tr / train_valid.

Every split is kept sorted by (SessionId, Time); events of one session with
the same Time keep their input order (stable sort).

Manifest hash ("canonical serialization"): the split sorted by
(SessionId, Time, ItemId), then the bytes of the SessionId column as int64
little-endian, then ItemId as int64 little-endian, then Time as float64
little-endian, fed to sha256 in that order. It does not depend on file
format, row order of ties, or the pandas index.

Note: the authors' script truncates timestamps to whole seconds (and reads
them in local time); here Time keeps the milliseconds of the file, as SPEC.md
step 1 says ("unix seconds, float"). This can only matter for events within
one second of the tmax - 86400 boundary.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json
from .data.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train_full", "test", "train_tr", "train_valid")
COLUMNS = ("SessionId", "ItemId", "Time")
DTYPES = {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}
MIN_SESSION_LENGTH = 2
MIN_ITEM_SUPPORT = 5
DAY = 86400.0

#: The official split of the real RSC15 clicks (SPEC.md section 2).
OFFICIAL_RSC15_COUNTS = {
    "train_full": {"events": 31_637_239, "sessions": 7_966_257, "items": 37_483},
    "test": {"events": 71_222, "sessions": 15_324, "items": 6_751},
    "train_tr": {"events": 31_579_006, "sessions": 7_953_885, "items": 37_483},
    "train_valid": {"events": 58_233, "sessions": 12_372, "items": 6_359},
}


# --------------------------------------------------------------------------
# session helpers on frames sorted by SessionId


def sort_sessions(df: pd.DataFrame) -> pd.DataFrame:
    """Sorted by (SessionId, Time), stable; skips the sort when already sorted."""
    sid = df["SessionId"].to_numpy()
    time = df["Time"].to_numpy()
    if len(df) > 1:
        d_sid = np.diff(sid)
        if (d_sid >= 0).all() and ((d_sid != 0) | (np.diff(time) >= 0)).all():
            return df.reset_index(drop=True)
    order = np.lexsort((time, sid))  # lexsort is stable
    return df.iloc[order].reset_index(drop=True)


def session_bounds(session_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each session in an array sorted by SessionId."""
    n = len(session_ids)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], session_ids[1:] != session_ids[:-1])))
    lengths = np.diff(np.append(starts, n))
    return starts, lengths


def session_length(df: pd.DataFrame) -> np.ndarray:
    """Per event: the length of its session (``df`` sorted by SessionId)."""
    _, lengths = session_bounds(df["SessionId"].to_numpy())
    return np.repeat(lengths, lengths)


def drop_short_sessions(df: pd.DataFrame, min_length: int = MIN_SESSION_LENGTH) -> pd.DataFrame:
    return df[session_length(df) >= min_length].reset_index(drop=True)


def drop_rare_items(df: pd.DataFrame, min_support: int = MIN_ITEM_SUPPORT) -> pd.DataFrame:
    support = df["ItemId"].value_counts()
    frequent = support.index[support.to_numpy() >= min_support]
    return df[df["ItemId"].isin(frequent).to_numpy()].reset_index(drop=True)


def last_day_split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps 5-6: (train, test) with test = sessions ending in the final day."""
    tmax = df["Time"].max()
    starts, lengths = session_bounds(df["SessionId"].to_numpy())
    # sorted by time within a session, so the last event holds the session's max time
    session_max_time = df["Time"].to_numpy()[starts + lengths - 1]
    in_test = np.repeat(session_max_time >= tmax - DAY, lengths)
    train = df[~in_test].reset_index(drop=True)
    test = df[in_test].reset_index(drop=True)
    test = test[test["ItemId"].isin(pd.unique(train["ItemId"])).to_numpy()].reset_index(drop=True)
    test = drop_short_sessions(test, MIN_SESSION_LENGTH)
    return train, test


def official_split(clicks: pd.DataFrame, *, source: str | os.PathLike | None = None) -> dict:
    """SPEC.md section 2 on a clicks frame -> ``{train_full, test, train_tr, train_valid}``.

    ``source`` (the file the clicks came from) only goes into error messages.
    Raises DataError when a split comes out empty.
    """
    missing = [c for c in COLUMNS if c not in clicks.columns]
    if missing:
        raise DataError(source, f"clicks frame lacks column(s) {missing}")
    data = sort_sessions(clicks[list(COLUMNS)].astype(DTYPES))
    n_raw = len(data)
    data = drop_short_sessions(data, MIN_SESSION_LENGTH)  # step 2
    data = drop_rare_items(data, MIN_ITEM_SUPPORT)  # step 3
    data = drop_short_sessions(data, MIN_SESSION_LENGTH)  # step 4
    log.info("preprocessing kept %d of %d events", len(data), n_raw)
    if len(data) == 0:
        raise DataError(
            source,
            f"no events left after preprocessing ({n_raw} events in; sessions of length 1 and "
            f"items with fewer than {MIN_ITEM_SUPPORT} events are dropped)",
        )
    train_full, test = last_day_split(data)  # steps 5-6
    del data
    train_tr, train_valid = last_day_split(train_full)  # step 7
    splits = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": train_valid}
    for name in SPLITS:
        if len(splits[name]) == 0:
            raise DataError(
                source,
                f"split {name!r} is empty after preprocessing (the data must span more than "
                "two days and have sessions of length >= 2 ending in the last day)",
            )
    return splits


# --------------------------------------------------------------------------
# writing and reading


def canonical_sha256(df: pd.DataFrame) -> str:
    """sha256 of the canonical serialization (see the module docstring)."""
    sid = df["SessionId"].to_numpy(dtype=np.int64)
    item = df["ItemId"].to_numpy(dtype=np.int64)
    time = df["Time"].to_numpy(dtype=np.float64)
    order = np.lexsort((item, time, sid))
    digest = hashlib.sha256()
    for column, dtype in ((sid, "<i8"), (item, "<i8"), (time, "<f8")):
        digest.update(np.ascontiguousarray(column[order], dtype=dtype).tobytes())
    return digest.hexdigest()


def split_stats(df: pd.DataFrame) -> dict:
    return {
        "events": int(len(df)),
        "sessions": int(df["SessionId"].nunique()),
        "items": int(df["ItemId"].nunique()),
        "sha256": canonical_sha256(df),
    }


def write_tsv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """The official GRU4Rec TSV: header ``SessionId\\tItemId\\tTime``, tab separated."""
    table = pa.Table.from_pandas(df[list(COLUMNS)].astype(DTYPES), preserve_index=False)
    # Time always with a decimal point (1396310400.0, like pandas writes it), so
    # every reader sees a float column
    time = table.column("Time").cast(pa.string())
    time = pc.if_else(pc.match_substring(time, "."), time,
                      pc.binary_join_element_wise(time, pa.scalar(".0"), pa.scalar("")))
    table = table.set_column(2, "Time", time)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(b"SessionId\tItemId\tTime\n")
            pv.write_csv(
                table,
                out,
                write_options=pv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
            )


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    table = pa.Table.from_pandas(df[list(COLUMNS)].astype(DTYPES), preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_split(
    splits: dict,
    outdir: str | os.PathLike,
    *,
    official_counts: dict | None = None,
    log: logging.Logger | None = None,
    extra: dict | None = None,
) -> dict:
    """Write the four splits as parquet and TSV plus ``manifest.json``; return the manifest.

    Every file is written under a temporary name and renamed; the manifest is
    written last, so its presence means the split is complete. With
    ``official_counts`` the manifest says per split whether events, sessions
    and items equal the official ones, and a WARNING is logged when not.
    ``extra`` entries are added to the manifest as they are.
    """
    logger = log or logging.getLogger(__name__)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "manifest.json").unlink(missing_ok=True)  # a stale manifest must not vouch for new files
    manifest: dict = {"format": "gru4rec-repro split v1", "canonical_sha256": (
        "sorted by SessionId, Time, ItemId; sha256 over SessionId int64 LE, "
        "then ItemId int64 LE, then Time float64 LE"), "splits": {}}
    if extra:
        manifest.update(extra)
    for name in SPLITS:
        df = splits[name]
        write_parquet(df, outdir / f"{name}.parquet")
        write_tsv(df, outdir / f"{name}.tsv")
        manifest["splits"][name] = split_stats(df)
        logger.info("%s: %s", name, manifest["splits"][name])
    if official_counts is not None:
        mismatches = []
        for name in SPLITS:
            got = manifest["splits"][name]
            want = official_counts[name]
            same = all(got[k] == want[k] for k in ("events", "sessions", "items"))
            got["matches_official"] = same
            got["official"] = dict(want)
            if not same:
                mismatches.append(f"{name}: got {[got[k] for k in ('events', 'sessions', 'items')]}, "
                                  f"official {[want[k] for k in ('events', 'sessions', 'items')]}")
        manifest["matches_official"] = not mismatches
        if mismatches:
            logger.warning(
                "!!! THE SPLIT DOES NOT MATCH THE OFFICIAL COUNTS (events, sessions, items) !!!\n  %s",
                "\n  ".join(mismatches),
            )
    write_json(manifest, outdir / "manifest.json")
    return manifest


def read_split(outdir: str | os.PathLike, name: str) -> pd.DataFrame:
    """One split (``train_full``, ``test``, ``train_tr``, ``train_valid``), sorted by (SessionId, Time)."""
    if name not in SPLITS:
        raise KeyError(f"unknown split {name!r}; use one of {SPLITS}")
    path = Path(outdir) / f"{name}.parquet"
    if not path.is_file():
        raise DataError(path, "split file not found (run the data step first)")
    df = pd.read_parquet(path, columns=list(COLUMNS)).astype(DTYPES)
    return sort_sessions(df)


def read_manifest(outdir: str | os.PathLike) -> dict:
    return json.loads((Path(outdir) / "manifest.json").read_text())


#: Manifest entries about the dataset a split comes from; a split derived from
#: another (a dwell variant) carries them over into its own manifest.
DATASET_KEYS = ("dataset", "validation")


def dataset_info(outdir: str | os.PathLike) -> dict:
    """The :data:`DATASET_KEYS` entries of the manifest in ``outdir`` ({} without a readable manifest).

    A dwell variant's manifest written before variants carried these entries
    lacks them: then they are read from the split it derives from (``derived_from``).
    """
    try:
        manifest = read_manifest(outdir)
        if "dataset" not in manifest and manifest.get("derived_from", {}).get("dir"):
            manifest = read_manifest(manifest["derived_from"]["dir"])
    except (OSError, ValueError):
        return {}
    return {k: manifest[k] for k in DATASET_KEYS if k in manifest}
