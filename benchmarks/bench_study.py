"""Benchmark: the whole default study from a fresh clone, as a user runs it.

Clones the repository (its last commit) into a temporary folder, runs
``snakemake --cores N`` there from an empty ``results/`` and prints the wall
time, the CPU time of everything it started, how busy the cores were, the time
per rule and the slowest jobs (from each job's Snakemake benchmark file,
``results/benchmarks/``)::

    python benchmarks/bench_study.py                       # the default study, 2 cores
    python benchmarks/bench_study.py --configfile config/test.yaml --cores 2
    python benchmarks/bench_study.py --keep /tmp/study     # keep the clone and its results

Wall-clock numbers depend on what else runs on the machine: the load average
before and after the run is printed with them; quote it.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clone(repo: Path, dest: Path) -> str:
    """``git clone`` of ``repo`` into ``dest``; returns the commit cloned."""
    subprocess.run(["git", "clone", "--quiet", str(repo), str(dest)], check=True)
    return subprocess.run(["git", "-C", str(dest), "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def children_cpu_seconds() -> float:
    """User + system CPU time of every finished child process (and their waited-for children)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def job_benchmarks(results: Path) -> list[dict]:
    """One row per job benchmark file: its name (path under benchmarks/), wall s and CPU s."""
    rows = []
    root = results / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh, delimiter="\t"))
        if not records:
            continue
        last = records[-1]
        cpu = last.get("cpu_time", "")
        rows.append({
            "job": str(path.relative_to(root).with_suffix("")),
            "s": float(last["s"]),
            "cpu_s": float(cpu) if cpu not in ("", "NA", "-") else float("nan"),
        })
    return rows


def job_counts(workdir: Path) -> dict:
    """Jobs per rule, from Snakemake's own log of the run."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    counts: dict = defaultdict(int)
    if logs:
        for rule in re.findall(r"^(?:local)?rule (\w+):$", logs[-1].read_text(), flags=re.M):
            counts[rule] += 1
    return dict(counts)


def rule_of(job: str) -> str:
    """benchmarks/<dataset>/runs/<run>.tsv -> 'train <run>'; table_x -> 'table'."""
    parts = job.split("/")
    if len(parts) >= 3 and parts[1] == "runs":
        return "train"
    return parts[-1].split("_")[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=str(REPO), help="repository to clone (default: this one)")
    p.add_argument("--cores", default="2", help="snakemake --cores (default 2)")
    p.add_argument("--configfile", nargs="*", default=[], help="extra config files, relative to the clone")
    p.add_argument("--keep", default=None, help="clone into this folder and keep it (default: a temporary one)")
    p.add_argument("--top", type=int, default=15, help="slowest jobs to list")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = p.parse_args(argv)

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_study_"))
    if a.keep and work.exists():
        sys.exit(f"{work} exists; give a new folder to --keep")
    try:
        commit = clone(Path(a.repo), work)
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(a.cores)]
        if a.configfile:
            cmd += ["--configfile", *a.configfile]
        env = dict(os.environ, PYTHONPATH=str(work))  # the clone's code, not an installed copy
        load_before = os.getloadavg()
        cpu0, t0 = children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        cpu = children_cpu_seconds() - cpu0
        load_after = os.getloadavg()
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n", file=sys.stderr)
            print(f"snakemake failed (exit {proc.returncode}) after {wall:.0f} s; clone in {work}", file=sys.stderr)
            a.keep = a.keep or str(work)
            return 1

        jobs = job_benchmarks(work / "results")
        counts = job_counts(work)
        cores = os.cpu_count() if a.cores == "all" else int(a.cores)
        job_s = sum(j["s"] for j in jobs)
        by_rule: dict = defaultdict(lambda: [0, 0.0, 0.0])
        for j in jobs:
            r = by_rule[rule_of(j["job"])]
            r[0] += 1
            r[1] += j["s"]
            r[2] += j["cpu_s"]
        print(f"study: commit {commit} cloned into {work}; {' '.join(cmd[1:])}")
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
              f"(1 min; {os.cpu_count()} CPUs on this machine)")
        print(f"wall time       {wall:8.1f} s  ({wall / 60:.1f} min)")
        print(f"CPU time        {cpu:8.1f} s  (snakemake and every job it started)")
        print(f"jobs            {sum(v for k, v in counts.items() if k != 'all'):8d}    "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "all"))
        print(f"job wall time   {job_s:8.1f} s  (sum over jobs with a benchmark file; "
              f"{job_s / (wall * cores):.0%} of {cores} cores x wall)")
        print("\nper rule          jobs   wall s    CPU s")
        for rule, (n, s, c) in sorted(by_rule.items(), key=lambda kv: -kv[1][1]):
            print(f"  {rule:15s} {n:5d} {s:8.1f} {c:8.1f}")
        print(f"\nslowest {a.top} jobs          wall s    CPU s")
        for j in sorted(jobs, key=lambda j: -j["s"])[: a.top]:
            print(f"  {j['job']:40s} {j['s']:7.1f} {j['cpu_s']:8.1f}")
        if a.json:
            Path(a.json).write_text(json.dumps({
                "commit": commit, "command": cmd[1:], "wall_s": wall, "cpu_s": cpu, "cores": cores,
                "load_before": load_before, "load_after": load_after, "jobs": counts, "job_benchmarks": jobs,
            }, indent=2) + "\n")
        return 0
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
