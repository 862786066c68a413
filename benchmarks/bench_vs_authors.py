"""Training speed of the authors' PyTorch GRU4Rec and ours, side by side.

Given a checkout of hidasib/GRU4Rec_PyTorch_Official (never copied into this
project), trains one epoch of each program on the same RSC15-shaped data
(``rsc15_like.py``) per setting, in alternating subprocesses (a fresh process
per run, the programs' order flipped every repeat), and prints each
program's events/s (median over the repeats) and the ratio to the authors'::

    python benchmarks/bench_vs_authors.py --authors /path/to/GRU4Rec_PyTorch_Official \\
        --settings xe bprmax xe-onehot bprmax-onehot top1-2016 --repeats 3 --threads 1

Programs: ``authors`` (their ``GRU4Rec.fit``, one epoch, events/s from its own
epoch line), ``torch`` (``implementations/gru4rec_torch``) and ``keras``
(``implementations/gru4rec_keras``, skipped with a message when TensorFlow or
the package cannot be imported), each events/s from its own epoch log. Every
program gets the same parameters in the official key spellings
(``rsc15_like.SETTINGS``); the authors' code has no TOP1 loss, so the 2016
setting runs ours only. Wall-clock: quote the numbers with the machine and
its load; events per CPU-second of each run are printed too.
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


def run_authors(authors: str, data_path: str, params: dict, device: str) -> dict:
    """One epoch of the authors' ``GRU4Rec.fit``; events/s as its epoch line prints it."""
    import torch

    _pandas_shim()
    sys.path.insert(0, str(Path(authors).resolve()))
    from gru4rec_pytorch import GRU4Rec  # the authors' module, from their checkout

    import gru4rec_pytorch

    data = _frame(data_path)
    model = GRU4Rec(device=torch.device(device))
    clock = _EpochClock()
    iterator_call = gru4rec_pytorch.SessionDataIterator.__call__

    def timed_call(self, *args, **kwargs):  # a probe: notes the CPU time when the epoch's loop starts
        clock.start = time.process_time()
        return iterator_call(self, *args, **kwargs)

    gru4rec_pytorch.SessionDataIterator.__call__ = timed_call
    with contextlib.redirect_stdout(clock):
        model.set_params(**{**params, "n_epochs": 1})
        # compatibility_mode=False: their numpy initialisation (line 457) makes float64
        # matrices under numpy 2 and fails; their torch initialisation is the same speed
        model.fit(data, compatibility_mode=False)
    text = clock.getvalue()
    # "Epoch1 --> loss: 7.123456 \t(12.34s) \t[123.45 mb/s | 3456 e/s]"
    m = re.search(r"Epoch1 --> loss: (\S+) \t\((\S+)s\) \t\[(\S+) mb/s \| (\S+) e/s\]", text)
    if m is None or clock.end is None:
        raise RuntimeError(f"no epoch line in the authors' output:\n{text[-2000:]}")
    loss, seconds, mbps, eps = (float(g) for g in m.groups())
    return {"events_per_s": eps, "mbatches_per_s": mbps, "seconds": seconds, "loss": loss,
            "events": round(eps * seconds), "cpu_seconds": clock.end - clock.start}


class _EpochClock(io.StringIO):
    """Captures the authors' printout and the CPU time when their epoch line is printed."""

    start = end = None

    def write(self, text):
        if self.end is None and "Epoch1 -->" in text:
            self.end = time.process_time()
        return super().write(text)


def run_torch(data_path: str, params: dict, device: str, threads: int) -> dict:
    from implementations.gru4rec_torch.runner import build
    from implementations.gru4rec_torch.train import train

    model, data = build(_frame(data_path), {**params, "n_epochs": 1}, 1, device)
    with tempfile.TemporaryDirectory() as out:
        c0 = time.process_time()
        line = train(model, data, out, threads=threads, device_label=device, progress=False, checkpoint=False)[-1]
        cpu = time.process_time() - c0
    return {"events_per_s": line["events_per_s"], "mbatches_per_s": line["mbatches_per_s"],
            "seconds": line["seconds"], "loss": line["loss"],
            "events": line.get("events", round(line["events_per_s"] * line["seconds"])), "cpu_seconds": cpu}


def run_keras(data_path: str, params: dict, device: str, threads: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from implementations.gru4rec_keras.data import SessionData, item_index
    from implementations.gru4rec_keras.model import GRU4Rec
    from implementations.gru4rec_keras.runner import configure, item_support
    from implementations.gru4rec_keras.train import train

    dev = configure(1, threads, device)
    df = _frame(data_path)
    item_ids = item_index(df)
    support = item_support(df, item_ids)
    with tf.device(dev), tempfile.TemporaryDirectory() as out:
        model = GRU4Rec(len(item_ids), {**params, "n_epochs": 1}, 1, support=support)
        data = SessionData.from_frame(df, item_ids, where="train", time_sort=model.p.get("time_sort", True))
        c0 = time.process_time()
        line = train(model, data, Path(out), support=support, threads=threads, device=device, progress=False)[-1]
        cpu = time.process_time() - c0
    return {"events_per_s": line["events_per_s"], "mbatches_per_s": line["mbatches_per_s"],
            "seconds": line["seconds"], "loss": line["loss"],
            "events": line.get("events", round(line["events_per_s"] * line["seconds"])), "cpu_seconds": cpu}


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    params = json.loads(args.params)
    if args.worker == "authors":
        r = run_authors(args.authors, args.data, params, args.device)
    elif args.worker == "torch":
        r = run_torch(args.data, params, args.device, args.threads)
    else:
        r = run_keras(args.data, params, args.device, args.threads)
    print("RESULT " + json.dumps(r), flush=True)


# ---------------------------------------------------------------- orchestrator
def keras_available() -> str | None:
    """None when the Keras GRU4Rec can be imported here, else why not."""
    probe = "import tensorflow, implementations.gru4rec_keras.model, implementations.gru4rec_keras.train"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)})
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["import failed"])[-1]


def spawn(program: str, setting: str, params: dict, data: str, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "OMP_WAIT_POLICY": "PASSIVE", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", program, "--data", data,
           "--params", json.dumps(params), "--threads", str(args.threads), "--device", args.device]
    if program == "authors":
        cmd += ["--authors", str(Path(args.authors).resolve())]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"{program} on {setting} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(df, settings, programs, args) -> list[dict]:
    """One epoch of each of ``programs`` per setting on ``df``, ``args.repeats``
    times, the order flipped every repeat; prints every run and each
    program's medians (wall and per CPU-second) with the ratio to the
    authors'; returns every run's result. ``args``: threads, device, repeats,
    and authors (the checkout) when "authors" is among ``programs``."""
    from rsc15_like import AUTHORS_SKIP, SETTINGS, shape_report

    print("data:", shape_report(df))
    print(f"one epoch per run, {args.threads} thread(s), device {args.device}, {args.repeats} repeats, "
          "programs alternated", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.tsv")
        df.to_csv(data, sep="\t", index=False)
        for setting in settings:
            params = SETTINGS[setting]
            order = [p for p in programs if not (p == "authors" and setting in AUTHORS_SKIP)]
            if len(order) < len(programs):
                print(f"{setting}: authors skipped ({AUTHORS_SKIP[setting]})")
            runs = {p: [] for p in order}
            for rep in range(args.repeats):
                for program in (order if rep % 2 == 0 else order[::-1]):
                    r = spawn(program, setting, params, data, args)
                    r.update(setting=setting, program=program, repeat=rep)
                    runs[program].append(r)
                    results.append(r)
                    r["events_per_cpu_s"] = r["events"] / max(r["cpu_seconds"], 1e-9)
                    print(f"  {setting:>14} {program:>7} run {rep + 1}: {r['events_per_s']:>9,.0f} events/s, "
                          f"{r['events_per_cpu_s']:>9,.0f} events per CPU-second ({r['seconds']:.1f} s, "
                          f"loss {r['loss']:.4f})", flush=True)
            for key, what in (("events_per_s", "events/s (wall)"), ("events_per_cpu_s", "events per CPU-second")):
                med = {p: statistics.median(x[key] for x in v) for p, v in runs.items()}
                line = ", ".join(f"{p} {v:,.0f}" for p, v in med.items())
                if "authors" in med:
                    line += "; ratio to the authors' " + ", ".join(
                        f"{p} {v / med['authors']:.2f}x" for p, v in med.items() if p != "authors")
                print(f"{setting}: median {what}: {line}", flush=True)
    return results


def main(argv=None) -> None:
    from rsc15_like import RSC15_SESSIONS, SETTINGS, synthetic_sessions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", help="checkout of hidasib/GRU4Rec_PyTorch_Official (its gru4rec_pytorch.py)")
    ap.add_argument("--settings", nargs="+", default=["xe", "bprmax", "xe-onehot", "bprmax-onehot", "top1-2016"],
                    choices=sorted(SETTINGS))
    ap.add_argument("--programs", nargs="+", default=list(PROGRAMS), choices=PROGRAMS)
    ap.add_argument("--items", type=int, default=37_000)
    ap.add_argument("--sessions", type=int, default=RSC15_SESSIONS,
                    help="sessions of the training data (one epoch each; the default has RSC15's popularity curve)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write every run's result to this file")
    # worker mode (used by the orchestrator)
    ap.add_argument("--worker", choices=PROGRAMS, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    programs = list(args.programs)
    if "authors" in programs:
        if not args.authors:
            ap.error("--authors PATH is needed to run the authors' code (or leave 'authors' out of --programs)")
        if not (Path(args.authors) / "gru4rec_pytorch.py").is_file():
            ap.error(f"--authors {args.authors}: no gru4rec_pytorch.py there")
    if "keras" in programs:
        why = keras_available()
        if why:
            print(f"keras: skipped ({why})")
            programs.remove("keras")

    df = synthetic_sessions(args.items, args.sessions, seed=args.seed)
    results = compare(df, args.settings, programs, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
