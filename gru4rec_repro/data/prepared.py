"""An already split dataset in the official GRU4Rec TSV format.

Tab-separated files with a header naming at least ``SessionId``, ``ItemId``
and ``Time`` (other columns are ignored), as the authors' preprocessing
script writes them. ``train`` and ``test`` are required; ``train_tr`` and
``train_valid`` (the validation split) are optional and, when absent, are
derived from ``train`` by the same last-day rule as the official split.

A training split that the rule cannot cut (one day of data: every session
ends in its last day) gives an empty validation split; that is no error
here, because a study that evaluates on ``test`` never reads it. The data
step records it in the manifest (``validation``), and a study that does
evaluate on it stops with a message naming the dataset and the keys to give
(:func:`gru4rec_repro.run.read_split_file`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from .errors import DataError

REQUIRED = ("SessionId", "ItemId", "Time")
_TYPES = {"SessionId": pa.int64(), "ItemId": pa.int64(), "Time": pa.float64()}


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """One TSV split -> ``SessionId, ItemId, Time`` (int64, int64, float64)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty (expected a header SessionId\\tItemId\\tTime)")
    with open(path, "rb") as fh:
        header = fh.readline().decode("utf-8", "replace").rstrip("\r\n").split("\t")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(path, f"header lacks column(s) {missing}; found {header} "
                        "(expected tab-separated SessionId, ItemId, Time)", line=1)
    try:
        table = pv.read_csv(
            path,
            parse_options=pv.ParseOptions(delimiter="\t"),
            convert_options=pv.ConvertOptions(
                column_types=_TYPES, include_columns=list(REQUIRED), null_values=[],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        _locate_bad_line(path, header)
        raise DataError(path, f"cannot parse as a tab-separated SessionId/ItemId/Time file: {err}") from err
    if table.num_rows == 0:
        raise DataError(path, "the file has a header but no data rows")
    df = table.to_pandas()
    if not np.isfinite(df["Time"].to_numpy()).all():
        row = int(np.flatnonzero(~np.isfinite(df["Time"].to_numpy()))[0])
        raise DataError(path, "Time is not a finite number", line=row + 2, column_name="Time")
    return df[list(REQUIRED)]


def _locate_bad_line(path: Path, header: list[str]) -> None:
    columns = {name: header.index(name) for name in REQUIRED}
    with open(path, "rb") as fh:
        fh.readline()
        for number, raw in enumerate(fh, start=2):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split("\t")
            if len(fields) != len(header):
                raise DataError(path, f"expected {len(header)} tab-separated columns, got {len(fields)}: "
                                f"{text[:120]!r}", line=number)
            for name, col in columns.items():
                value = fields[col]
                try:
                    int(value) if name != "Time" else float(value)
                except ValueError:
                    kind = "a number" if name == "Time" else "an integer id"
                    raise DataError(path, f"cannot parse {value!r} as {kind}", line=number,
                                    column=col + 1, column_name=name) from None


def _check_known_items(train: pd.DataFrame, test: pd.DataFrame, test_path, train_path) -> None:
    unknown = pd.unique(test["ItemId"][~test["ItemId"].isin(pd.unique(train["ItemId"]))])
    if len(unknown):
        examples = ", ".join(str(i) for i in np.sort(unknown)[:5])
        raise DataError(
            test_path,
            f"{len(unknown)} item(s) of this test split never occur in its training split "
            f"{train_path} (e.g. {examples}); drop them first (the official split does)",
        )


def read_prepared(train_path, test_path, train_tr=None, train_valid=None) -> dict[str, pd.DataFrame]:
    """Read a prepared split -> ``{train_full, test, train_tr, train_valid}``.

    Frames are sorted by (SessionId, Time). Raises DataError for missing
    columns, bad values, empty files and test items unknown to train. Without
    ``train_tr``/``train_valid`` they are cut from ``train`` by the last-day
    rule and may come out empty (see :func:`validation_note`).
    """
    from ..split import last_day_split, sort_sessions

    if (train_tr is None) != (train_valid is None):
        raise DataError(train_tr or train_valid, "give both train_tr and train_valid, or neither")
    out = {"train_full": sort_sessions(read_tsv(train_path)), "test": sort_sessions(read_tsv(test_path))}
    _check_known_items(out["train_full"], out["test"], test_path, train_path)
    if train_tr is not None:
        out["train_tr"] = sort_sessions(read_tsv(train_tr))
        out["train_valid"] = sort_sessions(read_tsv(train_valid))
        _check_known_items(out["train_tr"], out["train_valid"], train_valid, train_tr)
    else:
        out["train_tr"], out["train_valid"] = last_day_split(out["train_full"])
        if len(out["train_valid"]) == 0:  # nothing to validate on: both stay empty
            out["train_tr"] = out["train_tr"].iloc[:0]
    return out


def validation_note(splits: dict[str, pd.DataFrame], given: bool) -> dict:
    """The manifest's ``validation`` entry of a prepared split: where it comes from, or why there is none."""
    if given:
        return {"available": True, "from": "train_tr and train_valid as given"}
    if len(splits["train_valid"]):
        return {"available": True, "from": "cut from train by the official last-day rule"}
    time = splits["train_full"]["Time"]
    hours = (time.max() - time.min()) / 3600.0
    return {
        "available": False,
        "reason": f"the last-day rule leaves no validation session in train (its clicks span {hours:.1f} h)",
        "missing_keys": ["train_tr", "train_valid"],
    }
