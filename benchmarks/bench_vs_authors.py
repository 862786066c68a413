"""Training speed of the authors' PyTorch GRU4Rec and ours, side by side.

Given a checkout of hidasib/GRU4Rec_PyTorch_Official (never copied into this
project), trains one epoch of each program on the same RSC15-shaped data
(``rsc15_like.py``) per catalogue size and setting, in alternating
subprocesses (a fresh process per run, the programs' order flipped every
repeat), and prints each program's events/s and events per CPU-second
(median over the repeats) and the ratio to the authors'::

    python benchmarks/bench_vs_authors.py --authors /path/to/GRU4Rec_PyTorch_Official \\
        --items 3000 37000 --settings xe bprmax xe-onehot bprmax-onehot --repeats 3 --threads 1 \\
        --keras-backends tensorflow jax torch

Programs: ``authors`` (their ``GRU4Rec.fit``, one epoch, events/s from its own
epoch line), ``torch`` (``implementations/gru4rec_torch``) and ``keras``
(``implementations/gru4rec_keras``, once per backend of ``--keras-backends``,
each in its own processes since Keras fixes its backend at import: programs
``keras-tensorflow``, ``keras-jax``, ``keras-torch``), each events/s from its
own epoch log. Every program gets the same parameters in the official key
spellings (``rsc15_like.SETTINGS``); the authors' code has no TOP1 loss, so
the 2016 setting runs ours only.

``--items``: catalogue sizes, one case each (``rsc15_like.CATALOGUES``: 3,000
items is the size of the public 100k-session RSC15 sample, 37,000 gives the
35,000 items of full RSC15's training split; same session lengths and
popularity skew in both).

``--seeds S`` (S > 1): seeds trained together. Ours trains S seeds in one
epoch loop (the seeds-together API of GRU4REC_API.md: ``train.train_together``
of gru4rec_torch, one batched model; of gru4rec_keras, one vmapped step on JAX
on a GPU, the seeds' steps one after another elsewhere); the authors' code
has no such thing, so its program runs S fits one after the other in one
process (seeds 1..S through ``torch.manual_seed``). Each run's figure is the
events of all S seeds over the CPU time (and the wall time) of all S epochs.

Before any timing, each program trains once on a tiny slice of the data (the
preflight), so that a broken path fails in seconds with its own message, not
after minutes of timing. A Keras backend that fails later is dropped with its
error and the others go on. Wall-clock: quote the numbers with the machine and
its load; on a shared machine the events per CPU-second are the figure to use.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROGRAMS = ("authors", "torch", "keras")
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
#: Goal of issue 19 (events per CPU-second, ratio to the authors' code, every setting)
GOAL = {"torch": 2.0, "keras": 1.5}
#: Sessions of the preflight run of each program
PREFLIGHT_SESSIONS = 300


# --------------------------------------------------------------------- workers
def _frame(path: str):
    import pandas as pd

    return pd.read_csv(path, sep="\t", dtype={"SessionId": "int64", "ItemId": "int64", "Time": "float64"})


def _pandas_shim() -> None:
    """Let ``torch.tensor`` take a pandas Series, as the authors' code expects.

    Their ``fit`` builds the logQ counts with ``torch.tensor(series)``
    (gru4rec_pytorch.py line 454), which this torch/pandas pair refuses; in this
    worker process only, Series and Index are turned into numpy first (one
    isinstance check per call, nothing else changes).
    """
    import pandas as pd
    import torch

    try:
        torch.tensor(pd.Series([1.0], index=[5]))
        return
    except (TypeError, ValueError):
        pass
    original = torch.tensor

    def tensor(data, *args, **kwargs):
        if isinstance(data, (pd.Series, pd.Index)):
            data = data.to_numpy()
        return original(data, *args, **kwargs)

    torch.tensor = tensor


class _EpochClock(io.StringIO):
    """Captures the authors' printout and the CPU time when their epoch line is printed."""

    start = end = None

    def write(self, text):
        if self.end is None and "Epoch1 -->" in text:
            self.end = time.process_time()
        return super().write(text)


def _total(runs: list[dict]) -> dict:
    """One result for several epochs run one after the other (sums; loss = mean)."""
    seconds = sum(r["seconds"] for r in runs)
    events = sum(r["events"] for r in runs)
    return {"events_per_s": events / seconds, "mbatches_per_s": sum(r["mbatches"] for r in runs) / seconds,
            "seconds": seconds, "loss": sum(r["loss"] for r in runs) / len(runs), "events": events,
            "cpu_seconds": sum(r["cpu_seconds"] for r in runs), "seeds": len(runs)}


def run_authors(authors: str, data_path: str, params: dict, device: str, seeds=(1,)) -> dict:
    """One epoch of the authors' ``GRU4Rec.fit`` per seed, one after the other;
    seconds as their epoch line prints them, CPU time from their epoch loop's start
    to that line, events counted as ours are (``their_events``: as their line counts them)."""
    import numpy as np
    import torch

    _pandas_shim()
    sys.path.insert(0, str(Path(authors).resolve()))
    import gru4rec_pytorch  # the authors' module, from their checkout

    data = _frame(data_path)
    # the events an epoch trains on (every transition), as ours count them: their epoch line's
    # e/s counts a full batch_size per mini-batch (fit's n_valid is set once, gru4rec_pytorch.py
    # line 467), also in the shrinking mini-batches at the epoch's end
    events = len(data) - data["SessionId"].nunique()
    current = {}
    iterator_call = gru4rec_pytorch.SessionDataIterator.__call__

    def timed_call(self, *args, **kwargs):  # a probe: notes the CPU time when the epoch's loop starts
        current["clock"].start = time.process_time()
        return iterator_call(self, *args, **kwargs)

    gru4rec_pytorch.SessionDataIterator.__call__ = timed_call
    runs = []
    for seed in seeds:
        # their code has no seed: weights, samples and dropout come from torch's global generator
        torch.manual_seed(seed)
        np.random.seed(seed)
        model = gru4rec_pytorch.GRU4Rec(device=torch.device(device))
        clock = current["clock"] = _EpochClock()
        with contextlib.redirect_stdout(clock):
            model.set_params(**{**params, "n_epochs": 1})
            # compatibility_mode=False: their numpy initialisation (line 457) makes float64
            # matrices under numpy 2 and fails; their torch initialisation is the same speed
            model.fit(data, compatibility_mode=False)
        text = clock.getvalue()
        # "Epoch1 --> loss: 7.123456 \t(12.34s) \t[123.45 mb/s | 3456 e/s]"
        m = re.search(r"Epoch1 --> loss: (\S+) \t\((\S+)s\) \t\[(\S+) mb/s \| (\S+) e/s\]", text)
        if m is None or clock.end is None:
            raise RuntimeError(f"no epoch line in the authors' output (seed {seed}):\n{text[-2000:]}")
        loss, seconds, mbps, eps = (float(g) for g in m.groups())
        runs.append({"events": events, "mbatches": mbps * seconds, "seconds": seconds, "loss": loss,
                     "cpu_seconds": clock.end - clock.start, "their_events": round(eps * seconds)})
    return {**_total(runs), "their_events": sum(r["their_events"] for r in runs)}


def _epoch_result(line: dict, cpu: float, seeds: int = 1) -> dict:
    events = line.get("events", round(line["events_per_s"] * line["seconds"]))
    return {"events_per_s": line["events_per_s"], "mbatches_per_s": line["mbatches_per_s"],
            "seconds": line["seconds"], "loss": line["loss"], "events": events, "cpu_seconds": cpu,
            "seeds": seeds}


def _seeds_result(lines: list[dict], cpu: float, seeds: list[int], framework: str) -> dict:
    """One result for one epoch of ``seeds`` trained together, from each seed's epoch line
    (that seed's events; the group's seconds): events are those of all the seeds."""
    if lines[0].get("seeds_together", len(seeds)) != len(seeds):
        raise RuntimeError(f"{framework} trained {lines[0].get('seeds_together')} seeds together, not {len(seeds)}")
    events = sum(ln["events"] for ln in lines)  # each line: that seed's events, the group's seconds
    seconds = lines[0]["seconds"]
    return {"events_per_s": events / seconds, "mbatches_per_s": lines[0]["mbatches_per_s"], "seconds": seconds,
            "loss": sum(ln["loss"] for ln in lines) / len(lines), "events": events, "cpu_seconds": cpu,
            "seeds": len(seeds)}


def _torch_seeds_together(df, params: dict, seeds: list[int], device: str, threads: int) -> dict:
    """One epoch of ``len(seeds)`` seeds trained together in gru4rec_torch
    (``train.train_together``, as ``runner.run_together`` calls it); events are
    those of all the seeds. The one place that knows its seeds-together call."""
    from implementations.gru4rec_torch.model import GRU4Rec
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.train import train_together

    p = {**params, "n_epochs": 1}
    model, data = build(df, p, seeds[0], device)
    models = [model] + [GRU4Rec(model.n_items, p, s, support=model.support, device=model.device) for s in seeds[1:]]
    with tempfile.TemporaryDirectory() as out:
        outdirs = [Path(out) / f"seed{s}" for s in seeds]
        for o in outdirs:
            o.mkdir()
        c0 = time.process_time()
        lines = [h[-1] for h in train_together(models, data, outdirs, threads=threads, device_label=device,
                                               progress=False, checkpoint=False)]
        cpu = time.process_time() - c0
    return _seeds_result(lines, cpu, seeds, "gru4rec_torch")


def run_torch(data_path: str, params: dict, device: str, threads: int, seeds=(1,)) -> dict:
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.train import train

    df = _frame(data_path)
    if len(seeds) > 1:
        return _torch_seeds_together(df, params, list(seeds), device, threads)
    model, data = build(df, {**params, "n_epochs": 1}, seeds[0], device)
    with tempfile.TemporaryDirectory() as out:
        c0 = time.process_time()
        line = train(model, data, out, threads=threads, device_label=device, progress=False, checkpoint=False)[-1]
        cpu = time.process_time() - c0
    return _epoch_result(line, cpu)


def run_keras(data_path: str, params: dict, device: str, threads: int, backend: str, seeds=(1,)) -> dict:
    """One epoch of the Keras GRU4Rec on ``backend`` (set before Keras is imported,
    as ``gru4rec_keras.runner.run`` does with its ``backend`` run parameter); several
    ``seeds`` trained together (``train.train_together``, as ``runner.run_together``
    calls it: one vmapped step on JAX on a GPU, the seeds' steps one after another
    elsewhere), events those of all the seeds. The one place that knows its
    seeds-together call."""
    from implementations.gru4rec_keras import use_backend

    use_backend(backend)
    from implementations.gru4rec_keras import compiled, runner
    from implementations.gru4rec_keras.data import SessionData, item_index
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.train import train, train_together

    seeds = list(seeds)
    dev = runner.configure(seeds[0], threads, device)
    df = _frame(data_path)
    item_ids = item_index(df)
    support = runner.item_support(df, item_ids)
    p = {**params, "n_epochs": 1, "backend": backend}
    with compiled.device_scope(dev), tempfile.TemporaryDirectory() as out:
        models = [GRU4Rec(len(item_ids), p, s, support=support) for s in seeds]
        data = SessionData.from_frame(df, item_ids, where="train", time_sort=models[0].p.get("time_sort", True))
        if len(seeds) == 1:
            c0 = time.process_time()
            line = train(models[0], data, Path(out), support=support, threads=threads, device=device,
                         progress=False)[-1]
            return _epoch_result(line, time.process_time() - c0)
        outdirs = [Path(out) / f"seed{s}" for s in seeds]
        for o in outdirs:
            o.mkdir()
        c0 = time.process_time()
        lines = [h[-1] for h in train_together(models, data, outdirs, support=support, threads=threads,
                                               device=device, progress=False)]
        cpu = time.process_time() - c0
    return _seeds_result(lines, cpu, seeds, "gru4rec_keras")


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    params = json.loads(args.params)
    seeds = list(range(1, args.seeds + 1))
    if args.worker == "authors":
        r = run_authors(args.authors, args.data, params, args.device, seeds)
    elif args.worker == "torch":
        r = run_torch(args.data, params, args.device, args.threads, seeds)
    else:
        r = run_keras(args.data, params, args.device, args.threads, args.backend, seeds)
    print("RESULT " + json.dumps(r), flush=True)


# ---------------------------------------------------------------- orchestrator
def expand(programs, keras_backends) -> list[str]:
    """Program labels: ``keras`` becomes one ``keras-<backend>`` per backend."""
    out = []
    for p in programs:
        out += [f"keras-{b}" for b in keras_backends] if p == "keras" else [p]
    return out


def family(label: str) -> str:
    """``authors``, ``torch`` or ``keras`` (the goal that applies)."""
    return label.split("-")[0]


def keras_available(backend: str = "tensorflow") -> str | None:
    """None when the Keras GRU4Rec can be imported on ``backend`` here, else why not."""
    probe = (f"from implementations.gru4rec_keras import use_backend; use_backend({backend!r}); "
             "import keras, implementations.gru4rec_keras.model, implementations.gru4rec_keras.train; "
             f"assert keras.backend.backend() == {backend!r}, keras.backend.backend()")
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": backend,
                            "PYTHONPATH": str(ROOT)})
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["import failed"])[-1]


class ProgramFailed(RuntimeError):
    def __init__(self, program: str, message: str):
        super().__init__(message)
        self.program = program


def spawn(program: str, setting: str, params: dict, data: str, args) -> dict:
    """One run of ``program`` in a fresh process; its result dict."""
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OMP_WAIT_POLICY": "PASSIVE", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    worker_name, _, backend = program.partition("-")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker_name, "--data", data,
           "--params", json.dumps(params), "--threads", threads, "--device", args.device,
           "--seeds", str(getattr(args, "seeds", 1))]
    if worker_name == "authors":
        cmd += ["--authors", str(Path(args.authors).resolve())]
    if worker_name == "keras":
        env["KERAS_BACKEND"] = backend
        cmd += ["--backend", backend]
        if backend == "jax":  # XLA's CPU thread pools (jax has no set_num_threads)
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                                + ("false" if args.threads == 1 else "true")
                                + f" intra_op_parallelism_threads={threads}").strip()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise ProgramFailed(program, f"{program} on {setting} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def seeds_label(program: str, seeds: int) -> str:
    """What one run of ``program`` is with ``--seeds`` > 1: ours trains the seeds together,
    the authors' code has one run per seed, one after the other."""
    if family(program) == "authors":
        return f"{seeds} sequential runs of the authors' code"
    return f"{seeds} seeds together"


def compare(df, settings, programs, args, dropped: dict | None = None) -> list[dict]:
    """One epoch of each of ``programs`` per setting on ``df``, ``args.repeats``
    times, the order flipped every repeat; prints every run and each
    program's medians (wall and per CPU-second) with the ratio to the
    authors'; returns every run's result. ``args``: threads, device, repeats,
    authors (the checkout) when "authors" is among ``programs``; optional
    keras_backends (default tensorflow) and seeds (default 1).

    A Keras program that fails is reported and left out from then on (noted
    in ``dropped``: program -> why); a failure of any other program raises
    ProgramFailed."""
    from rsc15_like import AUTHORS_SKIP, SETTINGS, shape_report

    dropped = {} if dropped is None else dropped
    seeds = getattr(args, "seeds", 1)
    programs = expand(programs, getattr(args, "keras_backends", ["tensorflow"]))
    print("data:", shape_report(df))
    print(f"one epoch per run{f' of {seeds} seeds' if seeds > 1 else ''}, {args.threads} thread(s), "
          f"device {args.device}, {args.repeats} repeats, programs alternated", flush=True)
    if seeds > 1:
        ours = [p for p in programs if p != "authors"]
        print("each run: " + "; ".join(
            ([f"{', '.join(ours)}: {seeds_label('ours', seeds)}"] if ours else [])
            + ([f"authors: {seeds_label('authors', seeds)}"] if "authors" in programs else [])), flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.tsv")
        df.to_csv(data, sep="\t", index=False)
        for setting in settings:
            params = SETTINGS[setting]
            order = [p for p in programs if p not in dropped and not (p == "authors" and setting in AUTHORS_SKIP)]
            if "authors" in programs and "authors" not in order:
                print(f"{setting}: authors skipped ({AUTHORS_SKIP[setting]})")
            runs = {p: [] for p in order}
            for rep in range(args.repeats):
                for program in (order if rep % 2 == 0 else order[::-1]):
                    if program in dropped:
                        continue
                    try:
                        r = spawn(program, setting, params, data, args)
                    except ProgramFailed as err:
                        if family(program) != "keras":
                            raise
                        dropped[program] = str(err)
                        print(f"  {program} dropped: {err}", flush=True)  # its whole error, once
                        continue
                    r.update(setting=setting, program=program, repeat=rep)
                    r["events_per_cpu_s"] = r["events"] / max(r["cpu_seconds"], 1e-9)
                    runs[program].append(r)
                    results.append(r)
                    print(f"  {setting:>14} {program:>16} run {rep + 1}: {r['events_per_s']:>9,.0f} events/s, "
                          f"{r['events_per_cpu_s']:>9,.0f} events per CPU-second ({r['events']:,} events, "
                          f"{r['seconds']:.1f} s, {r['cpu_seconds']:.1f} CPU-s, loss {r['loss']:.4f}"
                          f"{'; ' + seeds_label(program, seeds) if seeds > 1 else ''})", flush=True)
            runs = {p: v for p, v in runs.items() if v}
            for key, what in (("events_per_s", "events/s (wall)"), ("events_per_cpu_s", "events per CPU-second")):
                med = {p: statistics.median(x[key] for x in v) for p, v in runs.items()}
                line = ", ".join(f"{p} {v:,.0f}" for p, v in med.items())
                if "authors" in med:
                    line += "; ratio to the authors' " + ", ".join(
                        f"{p} {v / med['authors']:.2f}x" for p, v in med.items() if p != "authors")
                print(f"{setting}: median {what}: {line}", flush=True)
    return results


def summary(results: list[dict]) -> str:
    """A markdown table: per catalogue and setting, each program's median events
    per CPU-second and its ratio to the authors' (wall-clock ratio in brackets),
    a cell below issue 19's goal marked."""
    programs = list(dict.fromkeys(r["program"] for r in results))
    cases = list(dict.fromkeys((r.get("items"), r["setting"]) for r in results))
    head = ["items", "setting"] + [f"{p} (ratio)" if p != "authors" else p for p in programs]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    below = 0
    for items, setting in cases:
        med = {}
        for p in programs:
            mine = [r for r in results if r["program"] == p and r.get("items") == items and r["setting"] == setting]
            if mine:
                med[p] = tuple(statistics.median(r[k] for r in mine) for k in ("events_per_cpu_s", "events_per_s"))
        cells = [f"{items:,}" if items else "", setting]
        for p in programs:
            if p not in med:
                cells.append("")
            elif p == "authors" or "authors" not in med:
                cells.append(f"{med[p][0]:,.0f}")
            else:
                ratio, wall = med[p][0] / med["authors"][0], med[p][1] / med["authors"][1]
                mark = "" if ratio >= GOAL[family(p)] else " below goal"
                below += bool(mark)
                cells.append(f"{med[p][0]:,.0f} ({ratio:.2f}x, wall {wall:.2f}x{mark})")
        rows.append("| " + " | ".join(cells) + " |")
    rows.append(f"events per CPU-second, medians; goal of issue 19: torch >= {GOAL['torch']}x, "
                f"keras >= {GOAL['keras']}x the authors' ({below} cell(s) below)")
    seeds = max(r.get("seeds", 1) for r in results) if results else 1
    if seeds > 1:
        rows.append(f"each cell: the events of {seeds} seeds; "
                    + ", ".join(f"{p}: {seeds_label(p, seeds)}" for p in programs))
    return "\n".join(rows)


def preflight(df, settings, programs, args) -> dict:
    """Each program once on the first PREFLIGHT_SESSIONS sessions of ``df`` (the
    first setting the authors' code has, so that every program runs): a broken path
    fails here in seconds. Returns program -> why, for the Keras programs that failed
    (they are left out); any other failure raises ProgramFailed."""
    from rsc15_like import AUTHORS_SKIP, SETTINGS

    setting = next((s for s in settings if s not in AUTHORS_SKIP), settings[0])
    small = df[df["SessionId"].isin(df["SessionId"].unique()[:PREFLIGHT_SESSIONS])]
    dropped = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.tsv")
        small.to_csv(data, sep="\t", index=False)
        ours_first = sorted(expand(programs, args.keras_backends), key=lambda p: p == "authors")
        for program in ours_first:
            if program == "authors" and setting in AUTHORS_SKIP:
                continue
            t0 = time.perf_counter()
            try:
                spawn(program, setting, SETTINGS[setting], data, args)
            except ProgramFailed as err:
                if family(program) != "keras":
                    raise
                dropped[program] = str(err)
                print(f"preflight: {program} failed, left out: {err}", flush=True)
                continue
            print(f"preflight: {program} ok ({setting}, {PREFLIGHT_SESSIONS} sessions, "
                  f"{time.perf_counter() - t0:.1f} s)", flush=True)
    return dropped


def main(argv=None) -> None:
    from rsc15_like import CATALOGUES, RSC15_SESSIONS, SETTINGS, synthetic_sessions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", help="checkout of hidasib/GRU4Rec_PyTorch_Official (its gru4rec_pytorch.py)")
    ap.add_argument("--settings", nargs="+", default=["xe", "bprmax", "xe-onehot", "bprmax-onehot", "top1-2016"],
                    choices=sorted(SETTINGS))
    ap.add_argument("--programs", nargs="+", default=list(PROGRAMS), choices=PROGRAMS)
    ap.add_argument("--keras-backends", nargs="+", default=["tensorflow"], choices=KERAS_BACKENDS,
                    help="Keras backends to run the Keras GRU4Rec on (one program each)")
    ap.add_argument("--items", type=int, nargs="+", default=list(CATALOGUES),
                    help="catalogue sizes, one case each (default: 3,000 and 37,000)")
    ap.add_argument("--sessions", type=int, nargs="+", default=[RSC15_SESSIONS],
                    help="sessions of the training data (one epoch each), one value or one per --items")
    ap.add_argument("--seeds", type=int, default=1,
                    help="seeds per run: ours trains them together, the authors' code one after the other")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    ap.add_argument("--json", help="also write every run's result to this file")
    # worker mode (used by the orchestrator)
    ap.add_argument("--worker", choices=PROGRAMS, help=argparse.SUPPRESS)
    ap.add_argument("--backend", choices=KERAS_BACKENDS, default="tensorflow", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds {args.seeds}: at least 1")
    if args.worker:
        return worker(args)
    if len(args.sessions) not in (1, len(args.items)):
        ap.error(f"--sessions: one value or one per --items ({len(args.items)}), not {len(args.sessions)}")
    sessions = args.sessions * len(args.items) if len(args.sessions) == 1 else args.sessions

    programs = list(args.programs)
    if "authors" in programs:
        if not args.authors:
            ap.error("--authors PATH is needed to run the authors' code (or leave 'authors' out of --programs)")
        if not (Path(args.authors) / "gru4rec_pytorch.py").is_file():
            ap.error(f"--authors {args.authors}: no gru4rec_pytorch.py there")
    if "keras" in programs:
        backends = []
        for backend in args.keras_backends:
            why = keras_available(backend)
            if why:
                print(f"keras-{backend}: skipped ({why})")
            else:
                backends.append(backend)
        args.keras_backends = backends
        if not backends:
            programs.remove("keras")

    t0 = time.perf_counter()
    cases = [(n, s, synthetic_sessions(n, s, seed=args.seed)) for n, s in zip(args.items, sessions)]
    try:
        dropped = preflight(cases[0][2], args.settings, programs, args)
    except ProgramFailed as err:
        raise SystemExit(f"bench_vs_authors: preflight failed, nothing timed.\n{err}")
    results = []
    for n_items, n_sessions, df in cases:
        print(f"\n== catalogue of {n_items:,} items, {n_sessions:,} sessions ==")
        for r in compare(df, args.settings, programs, args, dropped):
            r.update(items=n_items, sessions=n_sessions)
            results.append(r)
    print(f"\n{summary(results)}")
    for program, why in dropped.items():
        print(f"{program}: left out ({why.strip().splitlines()[-1]})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
