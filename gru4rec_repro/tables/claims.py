"""The claims table: what the papers claim, tested on our runs.

Claims (each at Recall@20 and MRR@20, measured with the papers' own protocol,
the 2016-2017 cut ``paper2016``; ours under conservative ties is shown too):

* ICLR 2016: the best GRU4Rec beats Item-KNN by about +20% Recall@20 and +30%
  MRR@20. "Best" = our best of the configured 2016 GRU4Rec runs at that metric
  (the paper also reports its best variant; the selection favours GRU4Rec).
* CIKM 2018: each max loss beats its pairwise counterpart (TOP1-max vs TOP1,
  BPR-max vs BPR) and cross-entropy with the same sampling (runs torch-xe-uniform:
  cross-entropy with the BPR-max setting's sampling). The claimed sizes are the
  tutorial's loss table's (as printed).
* Bogina & Kuflik 2017: dwell-time boosting of the training set beats no
  boosting with the same setting; and boosting the test set too. The latter is
  on a different (boosted) test set, so it is compared UNPAIRED.

Statistics: a - b paired over the same test events (seeds averaged per event),
95% bootstrap CI over test sessions, p from the paired t-test on per-session
sums (unpaired rows: independent bootstrap and z-test); the seed level: Welch
t-test on per-seed metrics when both runs have >= 2 seeds, a one-sample t-test
of the multi-seed run's per-seed metrics against the one-seed run's value when
one has a single seed. Both p columns are Holm-adjusted across the table.

Verdict rule (:func:`claim_verdict`), alpha = the study's ``alpha`` (default 0.05),
direction = the claimed sign:

* holds: the 95% CI of a - b excludes 0 in the claimed direction, the adjusted
  p < alpha, and the adjusted seed-level p < alpha where there is one;
* contradicted: the same with the opposite direction, or no effect: the runs
  are equivalent within the study's margin (90% CI of a - b inside
  +-margin x b, and the seed gap's 90% CI too with >= 2 seeds each: TOST);
* inconclusive: otherwise.

The size of the claimed effect is judged separately: "claimed size in CI" says
whether the claimed relative gain lies inside our 95% CI of the relative
difference.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import paper, stats
from .common import (
    CORRECTION, CORRECTION_NAMES, METRIC_LABELS, Study, Table, _empty, _p, _unpaired_note,
)

PROTOCOL = "paper2016"
ICLR_GRU_RUNS = ("torch-top1-2016", "torch-bpr-2016", "torch-xe-2016",
                 "torch-top1-2016-1000", "torch-bpr-2016-1000", "torch-xe-2016-1000")
#: (claim, a, b, published key of a, published key of b in the losses table)
CIKM_PAIRS = (
    ("CIKM 2018: TOP1-max > TOP1", "torch-top1max", "torch-top1", "TOP1-max", "TOP1"),
    ("CIKM 2018: BPR-max > BPR", "torch-bprmax", "torch-bpr", "BPR-max", "BPR"),
    ("CIKM 2018: TOP1-max > cross-entropy, same sampling", "torch-top1max", "torch-xe-uniform",
     "TOP1-max", "cross-entropy"),
    ("CIKM 2018: BPR-max > cross-entropy, same sampling", "torch-bprmax", "torch-xe-uniform",
     "BPR-max", "cross-entropy"),
)
#: (boosted run, unboosted run with the same setting, published key boosted, published key unboosted)
DWELL_PAIRS = (
    ("torch-dwell75-train", "torch-top1-2016", "GRU4Rec, dwell threshold 75", "GRU4Rec"),
    ("torch-dwell100-train", "torch-top1-2016", "GRU4Rec, dwell threshold 100", "GRU4Rec"),
    ("torch-bprmax-dwell75-train", "torch-bprmax", "with sampling, dwell threshold 75", "GRU4Rec with sampling"),
    ("torch-bprmax-dwell100-train", "torch-bprmax", "with sampling, dwell threshold 100", "GRU4Rec with sampling"),
    ("torch-dwell75-traintest", "torch-top1-2016", "GRU4Rec, dwell threshold 75", "GRU4Rec"),
    ("torch-dwell100-traintest", "torch-top1-2016", "GRU4Rec, dwell threshold 100", "GRU4Rec"),
    ("torch-bprmax-dwell75-traintest", "torch-bprmax", "with sampling, dwell threshold 75", "GRU4Rec with sampling"),
    ("torch-bprmax-dwell100-traintest", "torch-bprmax", "with sampling, dwell threshold 100", "GRU4Rec with sampling"),
)


def claim_verdict(c: dict, direction: int, p_adj: float, seed_p_adj: float, equivalent: bool,
                  alpha: float = stats.DEFAULT_ALPHA) -> tuple[str, str]:
    """(verdict, reason) by the rule of the module docstring.

    ``c``: a paired / unpaired comparison a - b (its ``ci95``); ``direction``: +1 when the
    claim is a > b, -1 when a < b; ``seed_p_adj``: NaN when there is no seed-level test;
    ``equivalent``: the runs are equivalent within the margin (TOST, events and seeds).
    """
    lo, hi = (direction * x for x in c["ci95"])
    lo, hi = min(lo, hi), max(lo, hi)
    seeds_ok = math.isnan(seed_p_adj) or seed_p_adj < alpha
    if lo > 0 and p_adj < alpha and seeds_ok:
        return "holds", "95% CI excludes 0 in the claimed direction, adjusted p < alpha" + (
            "" if math.isnan(seed_p_adj) else ", seed-level adjusted p < alpha")
    if hi < 0 and p_adj < alpha and seeds_ok:
        return "contradicted", "95% CI excludes 0 in the opposite direction, adjusted p < alpha" + (
            "" if math.isnan(seed_p_adj) else ", seed-level adjusted p < alpha")
    if equivalent:
        return "contradicted", "no effect: equivalent within the margin (TOST)"
    if lo > 0 or hi < 0:
        return "inconclusive", "CI excludes 0 but the adjusted p or the seed-level test does not confirm"
    return "inconclusive", "95% CI includes 0"


def seed_level_p(per_seed_a: np.ndarray, per_seed_b: np.ndarray,
                 seed_gap: dict | None = None) -> tuple[float, str]:
    """p of the seed-level test (see the module docstring) and its name; NaN when none applies.

    ``seed_gap``: the comparison's :func:`gru4rec_repro.stats.seed_gap_test` of the same
    per-seed values (``c["seed_gap"]`` of :meth:`Study.compare`), whose Welch p is reused
    when both sides have >= 2 seeds.
    """
    a, b = np.asarray(per_seed_a, float), np.asarray(per_seed_b, float)
    if len(a) >= 2 and len(b) >= 2:
        g = seed_gap if seed_gap is not None else stats.seed_gap_test(a, b)
        return g["welch_p"], "Welch"
    if len(a) >= 2 and len(b) == 1 or len(a) == 1 and len(b) >= 2:
        many, one = (a, b[0]) if len(a) >= 2 else (b, a[0])
        return stats.one_sample_gap_test(many, one), "one-sample t"
    return float("nan"), "none (one seed each)"


def _rel(pub_a: paper.Published | None, pub_b: paper.Published | None, metric: str) -> float:
    if pub_a is None or pub_b is None:
        return float("nan")
    a, b = pub_a.get(metric), pub_b.get(metric)
    return a / b - 1 if b else float("nan")


def _best(st: Study, runs, metric: str) -> str | None:
    have = [r for r in runs if st.has(r)]
    if not have:
        return None
    return max(have, key=lambda r: st.summary(r, metric, PROTOCOL)[0])


def candidate_rows(st: Study) -> list[dict]:
    """The claims whose runs are all in the config: claim, source, a, b, metric, claimed_rel, unpaired."""
    out = []
    for metric in METRIC_LABELS:
        best = _best(st, ICLR_GRU_RUNS, metric)
        if best and st.has("iknn"):
            out.append({"claim": "ICLR 2016: best GRU4Rec > Item-KNN", "source": paper.CLAIMS[
                "iclr2016_gru_vs_iknn"]["source"], "a": best, "b": "iknn", "metric": metric,
                "claimed_rel": paper.CLAIMS["iclr2016_gru_vs_iknn"][metric], "unpaired": False})
    for claim, a, b, ka, kb in CIKM_PAIRS:
        if st.has(a) and st.has(b):
            key = "cikm2018_max_vs_xe" if "cross-entropy" in claim else "cikm2018_max_vs_pairwise"
            for metric in METRIC_LABELS:
                out.append({"claim": claim, "source": paper.CLAIMS[key]["source"] + " (claimed size: "
                            + paper.TUTORIAL_LOSSES + ")", "a": a, "b": b, "metric": metric,
                            "claimed_rel": _rel(paper.published("losses", ka), paper.published("losses", kb), metric),
                            "unpaired": False})
    for a, b, ka, kb in DWELL_PAIRS:
        if st.has(a) and st.has(b):
            test_too = a.endswith("traintest")
            claim = ("Bogina & Kuflik 2017: dwell boosting (train+test) > none" if test_too
                     else "Bogina & Kuflik 2017: dwell boosting (train) > none")
            for metric in METRIC_LABELS:
                out.append({"claim": claim, "source": paper.CLAIMS["bogina2017_dwell"]["source"]
                            + " (claimed size: " + paper.BOGINA2017 + ")", "a": a, "b": b, "metric": metric,
                            "claimed_rel": _rel(paper.published("dwell", ka), paper.published("dwell", kb), metric),
                            "unpaired": test_too})
    return out


def claims_table(st: Study) -> Table:
    cands = candidate_rows(st)
    if not cands:
        return _empty("claims", ["Claim", "Runs"], st)
    rows, comps = [], []
    for i, r in enumerate(cands):
        c = st.compare(r["a"], r["b"], r["metric"], seed=7000 + i, policy=PROTOCOL, unpaired_ok=r["unpaired"])
        if r["unpaired"] and c["paired"]:
            raise ValueError(f"claims: {r['a']} and {r['b']} are on the same test events although "
                             "test-set boosting should change them")
        comps.append((f"{r['a']} vs {r['b']} {r['metric']}", c))
        pa = st.run(r["a"]).per_seed(r["metric"], st.k, PROTOCOL)
        pb = st.run(r["b"]).per_seed(r["metric"], st.k, PROTOCOL)
        seed_p, seed_test = seed_level_p(pa, pb, c["seed_gap"])
        cons_a = st.summary(r["a"], r["metric"])[0]
        cons_b = st.summary(r["b"], r["metric"])[0]
        rows.append({
            **r, "protocol": PROTOCOL, "n_seeds_a": len(pa), "n_seeds_b": len(pb),
            "metric_a": c["metric_a"], "metric_b": c["metric_b"], "diff": c["diff"],
            "rel_diff": c["rel_diff"], "ci_low": c["ci95"][0], "ci_high": c["ci95"][1],
            "rel_ci_low": c["rel_ci95"][0], "rel_ci_high": c["rel_ci95"][1],
            "p": c["p"], "seed_p": seed_p, "seed_test": seed_test, "paired": c["paired"],
            "rel_diff_conservative": cons_a / cons_b - 1 if cons_b else float("nan"),
        })
    data = pd.DataFrame(rows)
    data["p_adj"] = stats.adjust(data["p"], CORRECTION)
    data["seed_p_adj"] = stats.adjust(data["seed_p"], CORRECTION)
    verdicts, reasons, in_ci = [], [], []
    for (_, c), row in zip(comps, data.itertuples()):
        eq = stats.equivalence_verdict(c, margin=st.margin, alpha=st.alpha, p_adjusted=row.p_adj,
                                       seed_gap=c["seed_gap"])["verdict"] == "equivalent"
        v, why = claim_verdict(c, +1, row.p_adj, row.seed_p_adj, eq, st.alpha)
        verdicts.append(v)
        reasons.append(why)
        in_ci.append(None if math.isnan(row.claimed_rel) else
                     bool(row.rel_ci_low <= row.claimed_rel <= row.rel_ci_high))
    data["verdict"], data["verdict_reason"], data["claimed_size_in_ci"] = verdicts, reasons, in_ci
    holm = CORRECTION_NAMES[CORRECTION]
    disp = pd.DataFrame({
        "Claim": data["claim"],
        "Runs (a vs b)": [f"{a} vs {b}" for a, b in zip(data["a"], data["b"])],
        "Metric": [f"{METRIC_LABELS[m]}@{st.k}" for m in data["metric"]],
        "Claimed": data["claimed_rel"].map(lambda x: "–" if math.isnan(x) else f"{x:+.1%}"),
        "Ours, 2016 cut [95% CI]": [
            f"{r.rel_diff:+.1%} [{r.rel_ci_low:+.1%}, {r.rel_ci_high:+.1%}]"
            if not math.isnan(r.rel_diff) else "–" for r in data.itertuples()],
        "Ours, conservative": data["rel_diff_conservative"].map(lambda x: "–" if math.isnan(x) else f"{x:+.1%}"),
        f"p ({holm})": data["p_adj"].map(_p),
        f"seed p ({holm})": data["seed_p_adj"].map(_p),
        "Paired": data["paired"].map(lambda x: "yes" if x else "no"),
        "Claimed size in CI": data["claimed_size_in_ci"].map(lambda x: "–" if x is None else ("yes" if x else "no")),
        "Verdict": data["verdict"],
    })
    notes = [
        f"Each claim is tested at cut-off {st.k} with the protocol the papers used (2016-2017 cut: "
        "optimistic rank, hit when rank < 20); 'Ours, conservative' is the relative difference "
        "of the seed means under conservative ties, for reference.",
        "Ours: relative difference (a - b) / b of the seed means, with the 95% bootstrap CI over "
        f"test sessions (B = {st.n_boot}) divided by b. p: paired t-test on per-session sums "
        "(unpaired rows: z-test); seed p: Welch t-test on per-seed metrics when both runs have >= 2 "
        "seeds, one-sample t-test against the one-seed run's value otherwise (CSV column "
        f"seed_test); both {holm}-adjusted across this table.",
        f"Verdict rule (alpha {st.alpha}): holds = the 95% CI of a - b excludes 0 in the claimed "
        "direction, the adjusted p < alpha and the adjusted seed p < alpha (where there is one); "
        "contradicted = the same in the opposite direction, or no effect: the 90% CI of a - b lies "
        f"inside +-{st.margin:.0%} of b (and so does the seed gap's with >= 2 seeds each; TOST); "
        "inconclusive = anything else. 'Claimed size in CI' says whether the claimed relative "
        "gain lies inside our 95% CI (the verdict is about the direction).",
        "ICLR 2016 rows: 'best GRU4Rec' is our best configured 2016 GRU4Rec run at that metric "
        "(under the 2016 cut), as the paper reports its best variant; choosing the best favours "
        "the claim.",
        "CIKM 2018 'same sampling' rows use torch-xe-uniform: cross-entropy with the BPR-max "
        "setting's sampling (2048 extra samples, sample_alpha 0) and other values.",
        "Sources: " + "; ".join(dict.fromkeys(data["source"])) + ".",
    ]
    notes += _unpaired_note(comps, "test-set boosting changes the test events")
    if not st.is_paper_data:
        notes.append(f"Dataset '{st.dataset}' is not RSC15: the claimed sizes are RSC15 numbers.")
    return Table("claims", data, disp, notes,
                 caption="The papers' claims tested on our runs: relative effect with 95% CI, "
                         "Holm-adjusted p and verdict.",
                 label_columns=3)


TABLES = {"claims": claims_table}
