"""One dataset entry of the config -> the official split and its manifest.

``spec["source"]`` is one of

* ``synthetic``: generator keys (``n_sessions``, ``n_items``, ``n_days``,
  ``seed`` and any parameter of docs/SYNTHETIC.md);
* ``rsc15``: optional ``url``, ``archive``, ``clicks``, ``download_dir``,
  ``expected_archive_size``, ``expected_rows``; the manifest is checked
  against the official counts of SPEC.md;
* ``clicks``: ``path`` to any file in the yoochoose clicks format;
* ``prepared``: ``train``, ``test`` (and optionally ``train_tr``,
  ``train_valid``) in the official TSV format; used as they are, not re-split.
  Without ``train_tr``/``train_valid`` the validation split is cut from
  ``train``'s last day; when that leaves nothing (one day of data) the two
  validation files are written empty and the manifest's ``validation`` says
  why: only a study with ``study.eval_split: valid`` needs them.

This is what the Snakemake data rule calls.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..split import OFFICIAL_RSC15_COUNTS, official_split, write_split
from .clicks import read_clicks
from .errors import DataError

SOURCES = ("synthetic", "rsc15", "clicks", "prepared")
_RSC15_KEYS = {"url", "archive", "clicks", "download_dir", "expected_archive_size", "expected_rows",
               "retries", "progress"}


def _keys(name: str, spec: dict, allowed: set, required: set = frozenset()) -> dict:
    params = {k: v for k, v in spec.items() if k != "source"}
    unknown = sorted(set(params) - allowed - required)
    missing = sorted(required - set(params))
    if unknown or missing:
        raise DataError(None, f"dataset {name!r} (source {spec['source']!r}): "
                        + (f"unknown key(s) {unknown}" if unknown else "")
                        + ("; " if unknown and missing else "")
                        + (f"missing key(s) {missing}" if missing else ""))
    return params


def prepare_dataset(name: str, spec: dict, outdir, *, workdir=None, log: logging.Logger | None = None,
                    progress: bool = True) -> dict:
    """Make ``outdir/{train_full,test,train_tr,train_valid}.{parquet,tsv}`` + manifest.json.

    ``workdir`` holds intermediate files (the generated or downloaded clicks;
    default ``outdir/../raw``). Returns the manifest. Bad input raises
    DataError before anything is written under ``outdir``.
    """
    logger = log or logging.getLogger(__name__)
    outdir = Path(outdir)
    workdir = Path(workdir) if workdir is not None else outdir.parent / "raw"
    source = spec.get("source")
    if source not in SOURCES:
        raise DataError(None, f"dataset {name!r}: unknown source {source!r}; use one of {list(SOURCES)}")
    official_counts = None
    if source == "prepared":
        from .prepared import read_prepared, validation_note

        params = _keys(name, spec, {"train_tr", "train_valid"}, {"train", "test"})
        splits = read_prepared(params["train"], params["test"], params.get("train_tr"),
                               params.get("train_valid"))
        origin = {k: str(v) for k, v in params.items()}
        validation = validation_note(splits, given="train_tr" in params)
        if not validation["available"]:
            logger.warning("dataset %s: no validation split (%s); fine for study.eval_split test, "
                           "an error for valid", name, validation["reason"])
    else:
        if source == "synthetic":
            from . import synthetic

            params = dict(spec)
            params.pop("source")
            path = workdir / f"{name}-clicks.dat"
            summary = synthetic.generate(path, progress=progress, **params)
            origin = {"generator": summary["config"], "clicks": str(path)}
        elif source == "rsc15":
            from . import rsc15

            params = _keys(name, spec, _RSC15_KEYS)
            params.setdefault("progress", progress)
            path = rsc15.fetch(workdir / rsc15.CLICKS_NAME, **params)
            official_counts = OFFICIAL_RSC15_COUNTS
            origin = {"clicks": str(path), **{k: str(v) for k, v in params.items()}}
        else:  # clicks
            params = _keys(name, spec, set(), {"path"})
            path = Path(params["path"])
            origin = {"clicks": str(path)}
        logger.info("dataset %s: reading clicks from %s", name, path)
        clicks = read_clicks(path)
        splits = official_split(clicks, source=path)
        del clicks
    extra = {"dataset": name, "source": source, "origin": origin}
    if source == "prepared":
        extra["validation"] = validation
    return write_split(splits, outdir, official_counts=official_counts, log=logger, extra=extra)
