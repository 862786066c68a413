"""Ratios of B to A in a log of ``benchmarks/paired_runs.sh``: for each measured case (the text
of a line before its first ':' after the ``[label core N]`` prefix, settings that differ between
the programs' printouts such as ``backend=...`` dropped) the events per CPU-second of each
round, the ratio of each round and the median of the ratios, for each paired run of the log::

    python benchmarks/paired_ratios.py benchmarks/logs/2026-12-07-cpu-keras-tf-against-tf-only.log
"""
from __future__ import annotations

import re
import statistics
import sys

LINE = re.compile(r"^\[(?P<label>[^ \]]+) core \d+\]\s+(?P<case>[^:]+):.*\((?P<rate>[\d,]+) events per CPU-second")
#: printout fields that name the program rather than the case
PROGRAM_FIELDS = re.compile(r"\s(backend|jit|device|threads)=\S+")


def ratios(lines) -> list[dict]:
    """One {case: {label: [rate of round 1, ...]}} per paired run of the log (each starts with
    its "# A = " line), labels in the order they first appear."""
    runs: list[dict] = []
    out: dict = {}
    for line in lines:
        if line.startswith("# A = "):
            out = {}
            runs.append(out)
        m = LINE.match(line)
        if m:
            case = " ".join(PROGRAM_FIELDS.sub("", " " + m["case"]).split())
            out.setdefault(case, {}).setdefault(m["label"], []).append(int(m["rate"].replace(",", "")))
    return runs


def main(path: str) -> None:
    with open(path) as f:
        runs = ratios(f)
    for case, by_label in ((c, t) for run in runs for c, t in run.items()):
        if len(by_label) != 2:
            print(f"{case}: {len(by_label)} programs, need 2")
            continue
        (a, ra), (b, rb) = by_label.items()
        per_round = [y / x for x, y in zip(ra, rb)]
        print(f"{case}: {a} {ra}, {b} {rb}; {b}/{a} by round {[round(r, 2) for r in per_round]}, "
              f"median {statistics.median(per_round):.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
