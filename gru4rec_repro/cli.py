"""Command line of the study: every workflow rule is one of these commands.

    python -m gru4rec_repro prepare  --dataset NAME --spec JSON --out DIR
    python -m gru4rec_repro dwell    --split DIR --out DIR --threshold T --apply-to train|train+test
    python -m gru4rec_repro run      --implementation NAME --train F --test F --params JSON --seeds S [S ...] --out DIR
    python -m gru4rec_repro metrics  --ranks F --out F
    python -m gru4rec_repro table    --name NAME --results DIR --config JSON --dataset NAME --out DIR
    python -m gru4rec_repro figure   --name NAME --results DIR --config JSON --dataset NAME --out F
    python -m gru4rec_repro plan     [--configfile FILE ...] [--gpus N] [--cores N]

Rules stay thin: they only pass paths and the relevant part of the config.
Errors end the command with a one-line message (exit status 1) that names the
file and the problem, after the traceback has gone to the log.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def _json_arg(text: str):
    """A JSON argument, given inline or as @path/to/file.json."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})") from None


def _pin_threads(n: int) -> None:
    """Pin OpenMP / MKL / BLAS to ``n`` threads (before numpy or a framework starts them)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    # Idle OpenMP threads sleep instead of spinning: with 2 jobs on 2 cores, spinning
    # threads of one job steal the core of the other (measured: 10x slower training).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cmd_prepare(a) -> None:
    from .data.sources import prepare_dataset

    prepare_dataset(a.dataset, a.spec, a.out, workdir=a.workdir, log=logging.getLogger("prepare"))


def cmd_dwell(a) -> None:
    from .dwell import make_dwell_variant

    make_dwell_variant(a.split, a.out, a.threshold, a.apply_to)


def cmd_run(a) -> None:
    from .gpuslot import pin_gpu

    # One GPU of its own per GPU job, before PyTorch / TensorFlow start (profiles/local-gpu).
    pin_gpu(a.implementation, a.device)
    from .run import read_split_file, run_seed, run_seeds

    train, test = read_split_file(a.train), read_split_file(a.test)
    options = dict(threads=a.threads, device=a.device, progress=not a.no_progress)
    if a.seeds is not None:
        run_seeds(a.implementation, train, test, a.params, a.seeds, a.out, **options)
    else:
        run_seed(a.implementation, train, test, a.params, a.seed, a.out, **options)


def cmd_metrics(a) -> None:
    from .run import write_metrics

    write_metrics(a.ranks, a.out)


def cmd_table(a) -> None:
    from .tables import make_table

    make_table(a.name, a.results, a.config, a.dataset, a.out)


def cmd_figure(a) -> None:
    from .figures import make_figure

    make_figure(a.name, a.results, a.config, a.dataset, a.out)


def cmd_plan(a) -> None:
    from .plan import main as plan

    print(plan(a.configfile, gpus=a.gpus, cores=a.cores, throughput_file=a.throughput, results=a.results))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gru4rec_repro", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="get a dataset and write the official split")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", required=True, type=_json_arg, help="the dataset's entry of the config (JSON)")
    s.add_argument("--out", required=True, help="results/<dataset>/data")
    s.add_argument("--workdir", default=None, help="where downloads and raw files go")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("dwell", help="derive a dwell-time boosted split")
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--threshold", required=True, type=float)
    s.add_argument("--apply-to", required=True, choices=["train", "train+test"])
    s.set_defaults(func=cmd_dwell)

    s = sub.add_parser("run", help="train one implementation (one or several seeds): rank records and metrics")
    s.add_argument("--implementation", required=True)
    s.add_argument("--train", required=True, help="train split (.parquet or official .tsv)")
    s.add_argument("--test", required=True, help="test split (.parquet or official .tsv)")
    s.add_argument("--params", type=_json_arg, default={}, help="hyperparameters (JSON or @file)")
    seeds = s.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=1, help="one seed; its files go to --out (default 1)")
    seeds.add_argument("--seeds", type=int, nargs="+", help="several seeds in this process; seed S goes to --out/seedS")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "gpu"])
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("metrics", help="rank record -> metrics.json (the one shared evaluation)")
    s.add_argument("--ranks", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_metrics)

    for name, func, what in (("table", cmd_table, "a paper-style table"), ("figure", cmd_figure, "a figure")):
        s = sub.add_parser(name, help=f"build {what} from a dataset's results")
        s.add_argument("--name", required=True)
        s.add_argument("--results", required=True, help="results/<dataset>")
        s.add_argument("--config", required=True, type=_json_arg, help="the study config (JSON or @file)")
        s.add_argument("--dataset", required=True)
        s.add_argument("--out", required=True)
        s.set_defaults(func=func)

    s = sub.add_parser("plan", help="jobs, CPU-/GPU-hours and wall time of a study before launching it")
    s.add_argument("--configfile", nargs="+", default=[], help="config files merged over config/config.yaml, in order")
    s.add_argument("--gpus", type=int, default=0, help="GPUs available at once (default 0)")
    s.add_argument("--cores", type=int, default=None, help="CPU cores available at once (default: this machine's)")
    s.add_argument("--throughput", default=None, help="YAML of events/s per implementation/setting/device")
    s.add_argument("--results", default="results", help="where the data step's manifests are (default results)")
    s.set_defaults(func=cmd_plan)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # One thread unless the command was given --threads (the workflow passes the rule's threads).
    _pin_threads(getattr(args, "threads", None) or 1)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, KeyError, OSError) as e:
        logging.getLogger("gru4rec_repro").exception("failed")
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
