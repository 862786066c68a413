"""Implementations we did not write, each run in its own Python environment.

An external implementation is a folder ``implementations/external/<name>/``
with ``requirements.txt`` (exact pins), ``adapter.py`` (split files in, rank
record out; see :mod:`implementations.external.adapter_common`) and
``features.yaml`` (the feature checklist). This module

1. builds the implementation's environment once: ``python -m venv
   --system-site-packages`` (so it reuses the main environment's torch where
   the pins allow) and ``pip install -r requirements.txt``, in a folder keyed
   by the hash of ``requirements.txt`` and the Python version, under a cache
   folder (:func:`cache_dir`); a file lock makes two jobs that start at once
   build it once; a failed build leaves nothing behind and its error shows
   the tail of pip's log;
2. runs the adapter as a subprocess of that environment on the split written
   as TSV files, then checks what it returns: the rank record must hold
   exactly the test's prediction events with counts that fit the number of
   training items, and ``adapter_info.json`` the keys of the interface;
3. is the contract's ``run`` function of every external implementation
   (:func:`run_external`, registered in :mod:`gru4rec_repro.contract`), so
   :func:`gru4rec_repro.run.run_implementation` writes ``ranks.parquet``,
   ``metrics.json`` and ``run_info.json`` as for every other model; next to
   them go ``adapter_info.json`` (with the parameters the library cannot
   express), ``train_log.jsonl`` (seconds per epoch) and ``adapter.log``.

Settings that are not GRU4Rec parameters come from the environment (the
workflow's rule sets them from the config's ``external:`` section):

* ``GRU4REC_EXTERNAL_CACHE``: the folder of the environments (default
  ``~/.cache/gru4rec_repro/envs``);
* ``GRU4REC_EXTERNAL_OPTIONS``: JSON ``{implementation: {key: value}}``,
  e.g. ``{"authors": {"checkout": "/path/to/GRU4Rec_PyTorch_Official"}}``;
  an adapter reads its own part from ``GRU4REC_ADAPTER_OPTIONS``.

Command line (the workflow's environment rule; also handy by hand)::

    python -m gru4rec_repro.external build --implementation recbole [--cache DIR]
    python -m gru4rec_repro.external list
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from implementations.external.adapter_common import INFO_KEYS

from . import atomic
from .contract import RANK_COLUMNS, RunContext, validate_ranks

log = logging.getLogger("gru4rec_repro.external")

#: Where the external implementations live.
EXTERNAL_DIR = Path(__file__).resolve().parent.parent / "implementations" / "external"
#: The checker of an environment's pins (run by the environment's Python after pip install).
CHECK_PINS = EXTERNAL_DIR / "check_pins.py"
#: The implementations whose rows the audit table compares the others against.
AUTHORS = "authors"
#: Files of a complete environment folder.
MARKER = "gru4rec_repro_env.json"
CACHE_ENV = "GRU4REC_EXTERNAL_CACHE"
OPTIONS_ENV = "GRU4REC_EXTERNAL_OPTIONS"
ADAPTER_OPTIONS_ENV = "GRU4REC_ADAPTER_OPTIONS"
#: Lines of a log shown in an error message.
TAIL_LINES = 40


class ExternalError(RuntimeError):
    """An external implementation could not be built or run; the message names it, the file and the problem."""


# --------------------------------------------------------------------------- implementations


def names() -> list[str]:
    """Every external implementation: the folders of implementations/external/ with an adapter.py."""
    if not EXTERNAL_DIR.is_dir():
        return []
    return sorted(p.name for p in EXTERNAL_DIR.iterdir() if (p / "adapter.py").is_file())


def implementation_dir(name: str) -> Path:
    """The folder of implementation ``name``, checked to hold adapter.py and requirements.txt."""
    folder = EXTERNAL_DIR / name
    if not (folder / "adapter.py").is_file():
        raise ExternalError(f"{name}: no external implementation {folder / 'adapter.py'} "
                            f"(known: {', '.join(names()) or 'none'})")
    if not (folder / "requirements.txt").is_file():
        raise ExternalError(f"{name}: {folder / 'requirements.txt'} is missing (the pins of its environment)")
    return folder


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The folder of the environments: ``cache``, else $GRU4REC_EXTERNAL_CACHE, else ~/.cache/gru4rec_repro/envs."""
    if cache:
        return Path(cache).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    return Path.home() / ".cache" / "gru4rec_repro" / "envs"


def options(name: str) -> dict:
    """Implementation ``name``'s options from $GRU4REC_EXTERNAL_OPTIONS (empty when not set)."""
    text = os.environ.get(OPTIONS_ENV)
    if not text:
        return {}
    try:
        opts = json.loads(text)
    except json.JSONDecodeError as e:
        raise ExternalError(f"${OPTIONS_ENV}: not valid JSON ({e})") from None
    if not isinstance(opts, dict) or not isinstance(opts.get(name, {}), dict):
        raise ExternalError(f"${OPTIONS_ENV}: expected {{implementation: {{key: value}}}}, got {text!r}")
    return dict(opts.get(name) or {})


#: Packages of the main environment that every external environment reuses (torch) or whose
#: version decides what the reused ones were built against (numpy): part of the key.
MAIN_PACKAGES = ("torch", "numpy")


def main_environment() -> dict:
    """The main environment the external environments are built on: Python and the versions of
    :data:`MAIN_PACKAGES` (None where not installed); read from the installed metadata, no import."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for package in MAIN_PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def environment_key(name: str) -> str:
    """Hash of the implementation's requirements.txt, of the Python that builds its venv and of the
    main environment's torch and numpy versions (:func:`main_environment`): another torch or numpy
    in the main environment is another environment."""
    req = (implementation_dir(name) / "requirements.txt").read_bytes()
    main = main_environment()
    base = (f"{sys.version_info.major}.{sys.version_info.minor}|{sys.base_prefix}|{sys.prefix}|"
            + "|".join(f"{p}={main[p]}" for p in MAIN_PACKAGES)).encode()
    return hashlib.sha256(req + b"\0" + base).hexdigest()[:16]


def environment_dir(name: str, cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / f"{name}-{environment_key(name)}"


def environment_unavailable(name: str, cache: str | os.PathLike | None = None, *,
                            timeout: float = 600) -> str | None:
    """Why implementation ``name``'s environment can be neither found nor built here, or None.

    None when it is built (in ``cache``) or when pip's configured package
    indexes offer every pin of its requirements.txt (``pip install --dry-run
    --no-deps --ignore-installed``: each pin resolved on its own, no retries,
    nothing installed; pip reads the wheels' metadata, or the wheels, which
    it caches for the build); otherwise the reason, with pip's last error
    line (what the tests that need an environment say when they skip offline).
    """
    if is_built(environment_dir(name, cache)):
        return None
    requirements = implementation_dir(name) / "requirements.txt"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--no-input", "--retries", "0", "--timeout", "15", "-r", str(requirements)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{name}: its environment is not built and the package index cannot be reached ({e})"
    if out.returncode == 0:
        return None
    errors = [line for line in (out.stderr + out.stdout).splitlines() if line.startswith("ERROR")] or ["no output"]
    index = os.environ.get("PIP_INDEX_URL", "pip's configured index")
    return (f"{name}: its environment is not built and the package index ({index}) does not offer every pin of "
            f"{requirements.relative_to(EXTERNAL_DIR.parent.parent)}: {errors[-1]}")


def _python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on ``path`` (held by one process at a time; released on exit or crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_built(env: Path) -> bool:
    return (env / MARKER).is_file() and _python(env).exists()


def build_environment(name: str, cache: str | os.PathLike | None = None, *, timeout: float = 3600,
                      log_path: str | os.PathLike | None = None) -> Path:
    """Build implementation ``name``'s environment once; return its folder.

    Safe when several processes call it at once: one builds under a file lock,
    the others wait and then find it built. A failed build removes the folder
    and raises :class:`ExternalError` with the tail of pip's log. ``log_path``:
    also copy the build log there (the workflow's rule log).
    """
    requirements = implementation_dir(name) / "requirements.txt"
    env = environment_dir(name, cache)
    pip_log = env.parent / f"{env.name}.build.log"
    with _lock(env.parent / f"{env.name}.lock"):
        if is_built(env):
            log.info("%s: environment %s already built", name, env)
            if log_path is not None:
                Path(log_path).write_text(f"{name}: environment {env} already built\n")
            return env
        if env.exists():  # a build that died half way
            shutil.rmtree(env)
        log.info("%s: building environment %s from %s", name, env, requirements)
        t0 = time.perf_counter()
        with open(pip_log, "w") as out:
            steps = [
                ("python -m venv", [sys.executable, "-m", "venv", "--system-site-packages", str(env)]),
                ("pip install", [str(_python(env)), "-m", "pip", "install", "--disable-pip-version-check",
                                 "--no-input", "-r", str(requirements)]),
                # what every adapter imports must import in the new environment
                ("import numpy, pandas", [str(_python(env)), "-c", "import numpy, pandas; print('numpy', "
                                          "numpy.__version__, 'pandas', pandas.__version__)"]),
                # every package of its dependency tree pinned (but torch's, from the main environment)
                ("check_pins.py", [str(_python(env)), str(CHECK_PINS), str(requirements)]),
            ]
            for step, cmd in steps:
                if step == "pip install":
                    _see_main_environment(env, out)
                out.write("$ " + " ".join(cmd) + "\n")
                out.flush()
                try:
                    rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                        env=_clean_env()).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                if rc != 0:
                    out.close()
                    shutil.rmtree(env, ignore_errors=True)
                    _copy_log(pip_log, log_path)
                    raise ExternalError(
                        f"{name}: environment build failed ({step} exited with {rc}) for {requirements}; "
                        f"log {pip_log}, last lines:\n{_tail(pip_log)}")
        freeze = subprocess.run([str(_python(env)), "-m", "pip", "freeze", "--local"], capture_output=True,
                                text=True, env=_clean_env()).stdout.split()
        atomic.write_json({"implementation": name, "requirements": str(requirements), "key": env.name,
                           "python": sys.version.split()[0], "main_environment": main_environment(),
                           "seconds": time.perf_counter() - t0, "installed": freeze}, env / MARKER)
        _copy_log(pip_log, log_path)
        log.info("%s: environment built in %.0f s", name, time.perf_counter() - t0)
        return env


def _see_main_environment(env: Path, out) -> None:
    """When the main Python is itself a venv, ``--system-site-packages`` reaches only its base
    interpreter's packages: a ``.pth`` file adds the main environment's site-packages after the
    new environment's own (its pins still come first)."""
    if sys.prefix == sys.base_prefix:
        return
    import site
    import sysconfig

    main_paths = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]])
                  if Path(p).is_dir()]
    own = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (own / "gru4rec_repro_main_env.pth").write_text("".join(p + "\n" for p in main_paths))
    out.write(f"# main environment is a venv: {own / 'gru4rec_repro_main_env.pth'} adds {main_paths}\n")


def _copy_log(src: Path, dst) -> None:
    if dst is not None and src.is_file():
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _clean_env(extra: dict | None = None) -> dict:
    """The environment of a subprocess: no PYTHONPATH / PYTHONHOME (the project must not leak in)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- running


def expected_events(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The prediction events every implementation must rank: session_id, position, target.

    Test events whose item is not in train are dropped first; then each kept
    event with a next one in its session is an input (``position``: its index
    among the session's kept events), the next event's item the target.

    The same definition as ``adapter_common.prediction_events``, written again
    on purpose: this is what the harness checks the adapters' output against
    (:func:`check_rank_record`), so it must not share code with the adapters
    it checks (``tests/test_external.py`` checks the two agree).
    """
    test = test[test["ItemId"].isin(train["ItemId"].unique())]
    sessions = test["SessionId"].to_numpy(np.int64)
    items = test["ItemId"].to_numpy(np.int64)
    same_next = np.zeros(len(test), dtype=bool)
    same_next[:-1] = sessions[1:] == sessions[:-1]
    position = test.groupby("SessionId", sort=False).cumcount().to_numpy()
    rows = np.flatnonzero(same_next)
    return pd.DataFrame({"session_id": sessions[rows], "position": position[rows].astype(np.int32),
                         "target": items[rows + 1]})


def check_rank_record(ranks: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, where: str) -> pd.DataFrame:
    """The record must hold each expected prediction event once, with counts that fit the item count."""
    ranks = validate_ranks(ranks, where=where)
    want = expected_events(train, test)
    key = ["session_id", "position"]
    if ranks.duplicated(key).any():
        dup = ranks[ranks.duplicated(key, keep=False)].head(3)
        raise ExternalError(f"{where}: prediction events ranked more than once, e.g.\n{dup.to_string(index=False)}")
    joined = want.merge(ranks, on=key, how="outer", suffixes=("", "_got"), indicator=True)
    missing = joined[joined["_merge"] == "left_only"]
    extra = joined[joined["_merge"] == "right_only"]
    if len(missing) or len(extra):
        raise ExternalError(
            f"{where}: the rank record does not cover the test's prediction events: {len(missing)} of "
            f"{len(want)} missing (e.g. {missing[key].head(3).to_dict('records')}), {len(extra)} unexpected "
            f"(e.g. {extra[key].head(3).to_dict('records')})")
    wrong = joined[joined["target"] != joined["target_got"]]
    if len(wrong):
        raise ExternalError(f"{where}: {len(wrong)} event(s) with the wrong target, e.g. "
                            f"{wrong[key + ['target', 'target_got']].head(3).to_dict('records')}")
    n_items = train["ItemId"].nunique()
    over = ranks["higher"] + ranks["ties"] > n_items - 1
    if over.any():
        raise ExternalError(f"{where}: {int(over.sum())} event(s) with higher + ties > {n_items - 1} "
                            f"(the number of other training items)")
    # the contract's order: as the test split, by session and position
    order = want[key].merge(ranks, on=key, how="left")
    return order[list(RANK_COLUMNS)].astype(RANK_COLUMNS)


def run_adapter(name: str, train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int,
                outdir: str | os.PathLike, *, threads: int = 1, device: str = "auto",
                cache: str | os.PathLike | None = None, timeout: float | None = None,
                adapter_options: dict | None = None, keep_work: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run implementation ``name``'s adapter on one split and seed; return (rank record, adapter_info).

    Writes ``outdir/adapter.log`` (the adapter's output) and
    ``outdir/adapter_info.json``; the adapter works in ``outdir/adapter/``
    (the split as TSV, params.json, its outputs and scratch files), which is
    removed after a successful run unless ``keep_work``.
    """
    from .gru4rec_params import resolve
    from .split import write_tsv

    folder = implementation_dir(name)
    env = build_environment(name, cache)
    outdir = Path(outdir).resolve()  # the adapter runs in its own folder
    work = outdir / "adapter"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_tsv(train, work / "train.tsv")
    write_tsv(test, work / "test.tsv")
    settings = resolve(params)
    (work / "params.json").write_text(json.dumps(settings, indent=2) + "\n")
    opts = options(name) if adapter_options is None else dict(adapter_options)
    extra = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
             ADAPTER_OPTIONS_ENV: json.dumps(opts)}
    if device == "cpu":
        extra["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [str(_python(env)), str(folder / "adapter.py"), "--train", str(work / "train.tsv"),
           "--test", str(work / "test.tsv"), "--params", str(work / "params.json"), "--seed", str(seed),
           "--out", str(work / "out")]
    log_file = outdir / "adapter.log"
    log.info("%s: seed %d: %s", name, seed, " ".join(cmd))
    t0 = time.perf_counter()
    with open(log_file, "w") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work, timeout=timeout,
                                env=_clean_env(extra)).returncode
        except subprocess.TimeoutExpired:
            rc = f"timeout after {timeout} s"
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise ExternalError(f"{name}: adapter {folder / 'adapter.py'} failed ({rc}) on seed {seed}; "
                            f"log {log_file}, last lines:\n{_tail(log_file)}")
    ranks_file, info_file = work / "out" / "ranks.csv", work / "out" / "adapter_info.json"
    for f in (ranks_file, info_file):
        if not f.is_file():
            raise ExternalError(f"{name}: adapter {folder / 'adapter.py'} exited 0 but wrote no {f}")
    try:
        info = json.loads(info_file.read_text())
    except json.JSONDecodeError as e:
        raise ExternalError(f"{name}: {info_file}: not valid JSON ({e})") from None
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise ExternalError(f"{name}: {info_file}: missing key(s) {missing}")
    ranks = check_rank_record(pd.read_csv(ranks_file), train, test, where=f"{name}: {ranks_file}")
    info["environment"] = env.name
    info["main_environment"] = main_environment()  # torch and numpy of the key (environment_key)
    info["adapter_wall_seconds"] = seconds
    info["params_given"] = params
    info["params_resolved"] = settings
    atomic.write_json(info, outdir / "adapter_info.json")
    if not keep_work:  # the split's copies and the library's scratch files (a failed run keeps them)
        shutil.rmtree(work)
    return ranks, info


def write_train_log(info: dict, path: Path) -> None:
    """``train_log.jsonl`` from the adapter's seconds (and losses, when it reports them) per epoch."""
    losses = info.get("train_loss") or []
    lines = []
    for i, seconds in enumerate(info["seconds_per_epoch"]):
        loss = losses[i] if i < len(losses) else None
        lines.append(json.dumps({"epoch": i + 1, "loss": loss, "seconds": float(seconds),
                                 "source": f"{info['library']} {info['version']} (adapter)"}))
    atomic.write_text("".join(line + "\n" for line in lines), path)


def run_external(name: str, train: pd.DataFrame, test: pd.DataFrame, params: dict, seed: int,
                 ctx: RunContext) -> pd.DataFrame:
    """The contract's ``run`` of external implementation ``name`` (see the module docstring)."""
    ranks, info = run_adapter(name, train, test, params, seed, ctx.outdir, threads=ctx.threads,
                              device=ctx.device)
    write_train_log(info, Path(ctx.outdir) / "train_log.jsonl")
    if info["not_expressed"]:
        ctx.log.info("%s: not expressed in %s %s: %s", name, info["library"], info["version"],
                     "; ".join(f"{k}: {v}" for k, v in info["not_expressed"].items()))
    return ranks


def runner(name: str):
    """A contract ``run(train, test, params, seed, ctx)`` for external implementation ``name``."""
    def run(train, test, params, seed, ctx):
        return run_external(name, train, test, params, seed, ctx)

    run.__name__ = f"run_{name}"
    run.__doc__ = f"External implementation {name!r} (implementations/external/{name}/) under the contract."
    return run


# --------------------------------------------------------------------------- workflow settings


#: Our PyTorch runs' prefix: external run ``<prefix>-<setting>`` is compared with ``torch-<setting>``.
OURS_PREFIX = "torch-"


def setting_of(run: str) -> str:
    """``recbole-xe`` -> ``xe`` (the part after the first '-'; the whole name when there is none)."""
    return run.split("-", 1)[1] if "-" in run else run


def comparison_run(run: str) -> str:
    """Our run an external run is compared with in the audit table: ``recbole-xe`` -> ``torch-xe``."""
    return OURS_PREFIX + setting_of(run)


def resolved_setting(params: dict | None) -> dict:
    """The GRU4Rec settings ``params`` train with (:func:`gru4rec_repro.gru4rec_params.resolve`), the
    keys of GRU4Rec only (an implementation's own keys aside): what two runs must share to be compared."""
    from .gru4rec_params import OFFICIAL_DEFAULTS, OUR_DEFAULTS, known_keys, resolve

    known = set(known_keys())
    p = resolve({k: v for k, v in (params or {}).items() if k in known})
    return {k: p[k] for k in sorted({*OFFICIAL_DEFAULTS, *OUR_DEFAULTS})}


def setting_differences(a: dict, b: dict) -> dict[str, tuple]:
    """Keys whose values differ between two :func:`resolved_setting` results: key -> (a's, b's)."""
    return {k: (a.get(k), b.get(k)) for k in sorted({*a, *b}) if a.get(k) != b.get(k)}


def format_differences(diff: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {json.dumps(x)} vs {json.dumps(y)}" for k, (x, y) in diff.items())


def _params_of_ours(config: dict, run: str) -> dict:
    """What ``run`` trains with when it takes its comparison run's params (external.params_from_ours)."""
    from .gru4rec_params import known_keys

    ours = comparison_run(run)
    if ours not in config["runs"]:
        raise ValueError(f"config: external.params_from_ours is set, but {run!r} has no run {ours!r} under "
                         f"runs: to take its params from (the audit table compares {run} with {ours})")
    spec = config["runs"][run]
    if spec.get("params"):
        raise ValueError(f"config: runs.{run}.params is given, but external.params_from_ours is set: {run} "
                         f"trains with the params of {ours}; remove its params or set params_from_ours: false")
    known = set(known_keys())  # our implementation's own keys (e.g. a variant) are not the library's
    return {k: v for k, v in (config["runs"][ours].get("params") or {}).items() if k in known}


#: Key of ``config["study"]`` where :func:`study_runs` tells the audit table whether the authors'
#: code is configured (``checkout``) and which of its runs were left out (``left_out``).
AUTHORS_NOTE_KEY = "audit_authors"


def study_runs(config: dict, runs: list[str]) -> tuple[list[str], list[str]]:
    """The study's runs with the audit panel: (runs, runs left out).

    ``external.panel`` runs are appended to ``runs``; runs of the authors' code
    are left out when ``external.authors.checkout`` is not set (its licence
    forbids shipping it; the audit table then says it is not configured).

    Every external run of the study trains the setting of the run the audit
    table compares it with (:func:`comparison_run`): with
    ``external.params_from_ours`` its params are that run's (written into
    ``config`` here, after every config file's overrides, so
    ``--configfile config/test.yaml config/audit.yaml`` gives the panel the
    tiny study's settings); either way, two runs whose resolved settings
    differ (:func:`resolved_setting`, after ``study.epochs``) are refused,
    naming the keys.

    Also sets ``config["study"][AUTHORS_NOTE_KEY]`` (see :data:`AUTHORS_NOTE_KEY`).
    """
    from .contract import EXTERNAL, run_params

    ext = config.get("external") or {}
    out = list(runs)
    for run in ext.get("panel") or []:
        if run not in config["runs"]:
            raise ValueError(f"config: external.panel names {run!r}, which is not under runs:")
        if run not in out:
            out.append(run)
    dropped = []
    if not (ext.get("authors") or {}).get("checkout"):
        dropped = [r for r in out if config["runs"][r]["implementation"] == AUTHORS]
    kept = [r for r in out if r not in dropped]
    external_runs = [r for r in kept if config["runs"][r]["implementation"] in EXTERNAL]
    if ext.get("params_from_ours"):
        for run in external_runs:
            config["runs"][run]["params"] = _params_of_ours(config, run)
    for run in external_runs:
        ours = comparison_run(run)
        if ours not in config["runs"]:
            continue  # nothing to compare with (the audit table says so)
        diff = setting_differences(resolved_setting(run_params(config, run)),
                                   resolved_setting(run_params(config, ours)))
        if diff:
            raise ValueError(
                f"config: {run} and {ours}, which the audit table compares, train different settings: "
                f"{format_differences(diff)} ({run} vs {ours}); set external.params_from_ours: true "
                f"(config/audit.yaml) or give both the same params")
    # what the audit table's note says about the authors' code (the tables get config["study"])
    config.setdefault("study", {})[AUTHORS_NOTE_KEY] = {"checkout": bool((ext.get("authors") or {}).get("checkout")),
                                                        "left_out": dropped}
    return kept, dropped


def workflow_options(config: dict) -> str:
    """$GRU4REC_EXTERNAL_OPTIONS of the workflow's jobs (JSON; the checkout path made absolute)."""
    checkout = ((config.get("external") or {}).get("authors") or {}).get("checkout")
    opts = {AUTHORS: {"checkout": os.path.abspath(os.path.expanduser(checkout))}} if checkout else {}
    return json.dumps(opts)


# --------------------------------------------------------------------------- command line


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m gru4rec_repro.external", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build an implementation's environment (once)")
    b.add_argument("--implementation", required=True)
    b.add_argument("--cache", default=None, help=f"environments folder (default ${CACHE_ENV} or ~/.cache)")
    b.add_argument("--marker", default=None, help="write the environment's record here too (workflow output)")
    b.add_argument("--log", default=None, help="copy the build log here (workflow log)")
    sub.add_parser("list", help="the external implementations")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if a.cmd == "list":
            print("\n".join(names()))
            return
        env = build_environment(a.implementation, a.cache, log_path=a.log)
        if a.marker:
            atomic.write_text((env / MARKER).read_text(), a.marker)
        print(env)
    except ExternalError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
