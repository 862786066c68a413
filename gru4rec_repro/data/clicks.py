"""The yoochoose clicks format: reading it fast, writing it exactly.

``yoochoose-clicks.dat`` (RSC15, SPEC.md section 1) has no header and four
comma-separated columns::

    SessionID,Timestamp,ItemID,Category
    1,2014-04-07T10:51:09.277Z,214536502,0

Timestamp is ISO 8601 UTC with milliseconds; Category is a string ("S", "0",
"1"-"12" or a long brand id) that the study does not use.

:func:`read_clicks` parses the file with pyarrow (multi-threaded C++, explicit
column types, timestamps parsed in C++), so the 33M-row / 1.5 GB real file
takes seconds and about 1 GB of memory; no Python object is made per row.
When the fast parse fails, a second, slower pass reads the file line by line
to say exactly which line and column is wrong.
"""
from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from .errors import DataError

log = logging.getLogger(__name__)

#: Columns of the clicks file, in file order.
FILE_COLUMNS = ("SessionID", "Timestamp", "ItemID", "Category")
#: Columns (and dtypes) of the DataFrame every reader in the study returns.
CLICK_DTYPES = {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}

_ISO_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
)


def _read_options(block_size: int | None) -> dict:
    read = pv.ReadOptions(column_names=list(FILE_COLUMNS))
    if block_size is not None:
        read.block_size = block_size
    convert = pv.ConvertOptions(
        column_types={
            "SessionID": pa.int64(),
            "Timestamp": pa.timestamp("ms", tz="UTC"),
            "ItemID": pa.int64(),
            "Category": pa.string(),
        },
        include_columns=["SessionID", "Timestamp", "ItemID"],  # Category is not needed
        null_values=[],  # an empty field is an error, never a silent null
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        timestamp_parsers=[pv.ISO8601],
    )
    return {"read_options": read, "convert_options": convert}


def read_clicks(path: str | os.PathLike, *, block_size: int | None = 1 << 26) -> pd.DataFrame:
    """Read a yoochoose-clicks file into ``SessionId, ItemId, Time`` (unix seconds).

    Rows keep the file's order. Raises :class:`DataError` naming the file,
    line, column and problem for a malformed line, a wrong number of columns,
    an unparseable id or timestamp, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty (expected SessionID,Timestamp,ItemID,Category lines)")
    try:
        table = pv.read_csv(path, **_read_options(block_size))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as err:
        locate_bad_line(path)  # raises a precise DataError if it can
        raise DataError(path, f"cannot parse as a yoochoose clicks file: {err}") from err
    if table.num_rows == 0:
        raise DataError(path, "the file has no data rows")
    time_ms = table.column("Timestamp").cast(pa.int64()).to_numpy()
    clicks = pd.DataFrame(
        {
            "SessionId": table.column("SessionID").to_numpy(),
            "ItemId": table.column("ItemID").to_numpy(),
            "Time": time_ms / 1000.0,
        }
    )
    del table
    log.info("read %d clicks from %s", len(clicks), path)
    return clicks


def _check_line(text: str) -> tuple[int, str, str] | None:
    """``(column, column name, problem)`` for a bad data line, None if it is fine."""
    fields = text.split(",")
    if len(fields) != len(FILE_COLUMNS):
        return (
            len(fields) + 1 if len(fields) < 4 else 5,
            "",
            f"expected 4 columns (SessionID,Timestamp,ItemID,Category), got {len(fields)}: {text[:120]!r}",
        )
    for col in (0, 2):
        value = fields[col].strip()
        if not re.fullmatch(r"[+-]?\d+", value) or not -(2**63) <= int(value) < 2**63:
            return col + 1, FILE_COLUMNS[col], f"cannot parse {value!r} as an integer id"
    stamp = fields[1].strip()
    bad = f"cannot parse {stamp!r} as an ISO 8601 timestamp with zone (e.g. 2014-04-07T10:51:09.277Z)"
    if not _ISO_TIMESTAMP.match(stamp):
        return 2, "Timestamp", bad
    try:
        datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 2, "Timestamp", bad
    return None


def locate_bad_line(path: str | os.PathLike) -> None:
    """Slow line-by-line pass: raise DataError at the first bad line, if any."""
    path = Path(path)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise DataError(path, "the line is not valid UTF-8 text", line=number) from None
            if not text.strip():
                continue  # blank lines are skipped by the fast reader too
            bad = _check_line(text)
            if bad is not None:
                column, name, problem = bad
                raise DataError(path, problem, line=number, column=column, column_name=name or None)


def format_timestamps(time_ms: np.ndarray) -> pa.Array:
    """Milliseconds since the epoch -> ``2014-04-07T10:51:09.277Z`` strings."""
    stamps = pa.array(np.asarray(time_ms, dtype=np.int64), type=pa.int64()).cast(
        pa.timestamp("ms", tz="UTC")
    )
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")


def write_clicks_chunk(
    out: BinaryIO,
    session_ids: np.ndarray,
    time_ms: np.ndarray,
    item_ids: np.ndarray,
    categories: pa.Array | list[str] | None = None,
) -> None:
    """Append rows in the exact yoochoose format to an open binary file."""
    n = len(session_ids)
    if categories is None:
        categories = pa.array(["0"] * n, type=pa.string())
    table = pa.table(
        {
            "SessionID": pa.array(np.asarray(session_ids, dtype=np.int64)),
            "Timestamp": format_timestamps(time_ms),
            "ItemID": pa.array(np.asarray(item_ids, dtype=np.int64)),
            "Category": pa.array(categories, type=pa.string()),
        }
    )
    pv.write_csv(table, out, write_options=pv.WriteOptions(include_header=False, quoting_style="none"))


def write_clicks(path: str | os.PathLike, clicks: pd.DataFrame) -> None:
    """Write a ``SessionId, ItemId, Time[, Category]`` frame as a clicks file (atomically).

    Time (unix seconds) is rounded to milliseconds. Mostly for tests and
    small hand-made files; the generator streams with :func:`write_clicks_chunk`.
    """
    from ..atomic import atomic_path

    cats = clicks["Category"].astype(str).tolist() if "Category" in clicks else None
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        write_clicks_chunk(
            out,
            clicks["SessionId"].to_numpy(),
            np.round(clicks["Time"].to_numpy(dtype=np.float64) * 1000.0).astype(np.int64),
            clicks["ItemId"].to_numpy(),
            cats,
        )
