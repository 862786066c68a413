"""Ratios of B to A in a log of ``benchmarks/paired_runs.sh``: for each measured case (the text
of a line before its first ':' after the ``[label core N]`` prefix, settings that differ between
the programs' printouts such as ``backend=...`` dropped) the events per CPU-second of each
round, the ratio of each round and the median of the ratios, for each paired run of the log::

    python benchmarks/paired_ratios.py benchmarks/logs/2026-12-07-cpu-keras-tf-against-tf-only.log
"""
from __future__ import annotations

import argparse
import re
import statistics

LINE = re.compile(r"^\[(?P<label>[^ \]]+) core \d+\]\s+(?P<rest>.*?)(?P<rate>[\d,]+) events per CPU-second")
#: the case of a line (after the prefix): its text before the first ':' by default;
#: ``--case REGEX`` with a group named ``case`` for other printouts, e.g. bench_vs_authors.py's
#: "xe  authors run 1: ..." lines: ``--case '^(?P<case>\S+)'``
DEFAULT_CASE = r"^(?P<case>[^:]+):"
#: printout fields that name the program rather than the case
PROGRAM_FIELDS = re.compile(r"\s(backend|jit|device|threads)=\S+")


def ratios(lines, case_re: str = DEFAULT_CASE) -> list[dict]:
    """One {case: {label: [rate of round 1, ...]}} per paired run of the log (each starts with
    its "# A = " line), labels in the order they first appear."""
    runs: list[dict] = []
    out: dict = {}
    for line in lines:
        if line.startswith("# A = "):
            out = {}
            runs.append(out)
        m = LINE.match(line)
        c = re.match(case_re, m["rest"]) if m else None
        if c:
            case = " ".join(PROGRAM_FIELDS.sub("", " " + c["case"]).split())
            out.setdefault(case, {}).setdefault(m["label"], []).append(int(m["rate"].replace(",", "")))
    return runs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--case", default=DEFAULT_CASE, help="regex with a group 'case' (default: text before ':')")
    args = ap.parse_args(argv)
    with open(args.log) as f:
        runs = ratios(f, args.case)
    for case, by_label in ((c, t) for run in runs for c, t in run.items()):
        if len(by_label) != 2:
            print(f"{case}: {len(by_label)} programs, need 2")
            continue
        (a, ra), (b, rb) = by_label.items()
        per_round = [y / x for x, y in zip(ra, rb)]
        print(f"{case}: {a} {ra}, {b} {rb}; {b}/{a} by round {[round(r, 2) for r in per_round]}, "
              f"median {statistics.median(per_round):.2f}")


if __name__ == "__main__":
    main()
