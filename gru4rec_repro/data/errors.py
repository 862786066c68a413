"""The one error type for bad input data.

Every message names the file, where it applies the line (1-based, counted in
the file as written) and the column, and what is wrong, e.g.

    DataError: data/clicks.dat, line 17, column 2 (Timestamp): cannot parse '2014-13-01T00:00:00Z' as an ISO 8601 timestamp with zone
"""
from __future__ import annotations

import os


class DataError(ValueError):
    """Input data that the study cannot use (malformed, empty, inconsistent)."""

    def __init__(
        self,
        path: str | os.PathLike | None,
        problem: str,
        *,
        line: int | None = None,
        column: int | None = None,
        column_name: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        self.line = line
        self.column = column
        self.column_name = column_name
        where = [self.path if self.path is not None else "<data>"]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}" + (f" ({column_name})" if column_name else ""))
        elif column_name is not None:
            where.append(f"column {column_name}")
        super().__init__(f"{', '.join(where)}: {problem}")
