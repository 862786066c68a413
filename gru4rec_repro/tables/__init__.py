"""The study's paper-style tables, built from a dataset's results folder.

One module per table family: ``gru4rec_repro/tables/<family>.py`` defines
``TABLES = {"<table name>": build_function}`` with
``build_function(st: Study) -> Table``. This package imports every module of
its folder and collects their ``TABLES`` by itself, so adding a table means
adding one file (INTERFACES.md section 4). :mod:`.common` holds
:class:`Study`, :class:`RunResults`, :class:`Table` and the formatting
helpers; :mod:`.render` writes a table as ``<name>.md`` (GitHub table),
``<name>.tex`` (a complete LaTeX ``table`` environment), ``<name>.csv``
(numeric columns) and ``<name>.notes.txt``.

The tables and the runs they read (a row whose run is not configured is left out):

* ``baselines``: pop, spop, iknn, iknn-symmetric, bprmf, bprmf-quirks, bprmf-factors, torch-xe;
* ``iclr2016``: pop, spop, iknn, bprmf, torch-{top1,bpr,xe}-2016, torch-{top1,bpr,xe}-2016-1000;
* ``losses``: {torch,keras}-{xe,top1,bpr,top1max,bprmax};
* ``authors_current``: {torch,keras}-{xe-best,bprmax,bprmax-noemb,xe-noemb-2018};
* ``dwell``: torch-top1-2016, torch-bprmax, torch-dwell{75,100}-{train,traintest},
  torch-bprmax-dwell{75,100}-{train,traintest};
* ``frameworks``: every setting X with torch-X and keras-X or keras-<backend>-X (every pair);
* ``keras_port``: keras-port, keras-port-as-published, keras-port-flaw-*;
* ``protocols``: every configured run;
* ``claims``: iknn (under both 2016 tie rules) and the 2016 GRU4Rec runs;
  torch-{top1max,top1,bprmax,bpr,xe-uniform}; the dwell runs with torch-top1-2016 / torch-bprmax.

Every table with published numbers prints each run's epochs and, in its notes, every published
parameter the run sets otherwise (its resolved parameters, :meth:`Study.resolved`).

Table order: :data:`ORDER` first, then any other discovered table
alphabetically. Two modules defining the same table name is an error naming
both. A row whose runs are not in the config is skipped; a configured run
whose files are missing is an error naming the file.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Callable

import pandas as pd

from .common import (
    METRIC_LABELS, RunResults, Study, Table, load_config, read_train_log,
)
from .render import render, write_table

#: The order tables are listed in (tables not named here follow alphabetically).
ORDER = ("baselines", "iclr2016", "losses", "authors_current", "dwell", "frameworks",
         "keras_port", "protocols", "claims")
#: Modules of this package that hold no tables.
_NOT_FAMILIES = {"common", "render"}


def _discover() -> dict[str, Callable[[Study], Table]]:
    builders: dict[str, Callable[[Study], Table]] = {}
    owner: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name in _NOT_FAMILIES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = getattr(module, "TABLES", None)
        if found is None:
            continue
        if not isinstance(found, dict):
            raise TypeError(f"{module.__file__}: TABLES must be a dict of table name -> build function")
        for name, fn in found.items():
            if name in builders:
                raise ValueError(f"table {name!r} is defined by both {owner[name]} and {info.name}")
            if not callable(fn):
                raise TypeError(f"{module.__file__}: TABLES[{name!r}] is not callable")
            builders[name] = fn
            owner[name] = info.name
    return builders


#: Table name -> build function, every family module's TABLES.
BUILDERS = _discover()
#: Every table name, in listing order.
TABLES = tuple([n for n in ORDER if n in BUILDERS] + sorted(n for n in BUILDERS if n not in ORDER))


def build_table(name: str, results_dir, config, dataset: str, study: Study | None = None) -> Table:
    """One table (numeric data, display and notes) from a results folder."""
    if name not in BUILDERS:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    st = study or Study(results_dir, config, dataset)
    return BUILDERS[name](st)


def make_table(name: str, results_dir, config, dataset: str, outdir=None) -> pd.DataFrame:
    """Build table ``name`` and write it under ``outdir`` (default results_dir/tables)."""
    table = build_table(name, results_dir, config, dataset)
    write_table(table, outdir if outdir is not None else Path(results_dir) / "tables")
    return table.data


def build_tables(results_dir, config, dataset: str) -> dict[str, pd.DataFrame]:
    """Every table's numeric data, loading every run once."""
    st = Study(results_dir, config, dataset)
    return {name: BUILDERS[name](st).data for name in TABLES}


def write_tables(results_dir, config, dataset: str, outdir=None) -> dict[str, pd.DataFrame]:
    """Build and write every table; returns their numeric data."""
    st = Study(results_dir, config, dataset)
    outdir = outdir if outdir is not None else Path(results_dir) / "tables"
    out = {}
    for name in TABLES:
        table = BUILDERS[name](st)
        write_table(table, outdir)
        out[name] = table.data
    return out


__all__ = [
    "TABLES", "BUILDERS", "ORDER", "Study", "RunResults", "Table", "METRIC_LABELS", "build_table",
    "make_table", "build_tables", "write_tables", "write_table", "render", "read_train_log",
    "load_config",
]
