"""Statistics that hold up (SPEC.md section 9): seeds, paired comparisons, verdicts.

Everything starts from rank records (:mod:`gru4rec_repro.contract`) turned into
per-event hit@k / reciprocal rank@k by :func:`gru4rec_repro.evaluation.per_event`.
``metric`` is ``"recall"`` (the event's hit, 0/1) or ``"mrr"`` (its reciprocal
rank, 0 beyond k). Recall@k and MRR@k are means over EVENTS.

Seeds
    :func:`seed_summary` gives mean, sd (ddof=1) and n of per-seed metrics.
    With one seed the sd is NaN (there is no spread to measure; tables print
    "n=1" rather than a made-up 0).

Combining seeds before pairing
    A run given as several rank records (one per seed) is first reduced to ONE
    value per event: the mean over seeds of that event's hit (or rr). The
    metric of this seed-averaged record equals the mean over seeds of the
    per-seed metrics, so the paired difference below is exactly the gap
    between the two runs' seed means. Its CI and p-value measure test-set
    sampling only; seed-to-seed variation is measured separately by
    :func:`seed_gap_test` and both enter :func:`equivalence_verdict`.

Paired comparison (:func:`paired_comparison`)
    Both runs must be scored on the same test events: the records are aligned
    on (session_id, position) and must hold the same events with the same
    targets; otherwise a ValueError names both runs (``align="intersect"``
    keeps the events both have, for exploration only: the tables never
    intersect). The difference is ``a - b`` of the event-level metric,
    absolute and relative to b.

Unpaired comparison (:func:`unpaired_comparison`)
    Only where the test events legitimately differ (a dwell-boosted test set
    against the original one; a flaw that changes which test events are
    scored): independent bootstrap of each side's sessions and a z-test with
    the two ratios' linearisation SEs. Tables say when a row is unpaired.

Seeds and sessions together (:func:`run_ci`, :func:`comparison_ci`)
    A 95% CI of one run's metric, or of a difference a - b, covers test
    sessions and seeds: its half-width is sqrt(h_sessions^2 + h_seeds^2), the
    two parts' half-widths added in quadrature, with h_sessions = z(0.975) x
    SE_sessions (the linearisation SE over the many test sessions: normal
    quantile) and h_seeds = t(0.975, n - 1) x sd_seeds / sqrt(n) for one run of
    n seeds (Student's t: with 3 seeds t(2) = 4.30, 2.2 times 1.96), or the
    Welch t quantile (Welch-Satterthwaite df) x sqrt(sd_a^2 / n_a + sd_b^2 / n_b)
    for a difference whose two sides have >= 2 seeds each (one side with one
    seed: that side adds no spread and the other side's t(n - 1) part is
    used). With one seed everywhere the CI covers test sessions only.

    With ``unit="session"`` (the default) the session is the resampling unit.
    Let d_e = value_a(e) - value_b(e), S_s = sum of d_e over session s and n_s
    its number of events; the difference is D = sum S_s / sum n_s.

    * Bootstrap CI: sessions are resampled with replacement (n_boot times,
      vectorised, seeded) carrying their event counts, and each replicate is
      sum S / sum n over the drawn sessions (a ratio, because the metric is a
      mean over events, not over sessions). Percentile 95% and 90% intervals.
    * t-based CI: D +- t(0.975, m-1) * SE with the ratio (linearisation) SE,
      SE = sqrt(sum_s (S_s - D n_s)^2 / (m (m - 1))) / mean(n_s), m sessions.
    * Paired t-test: ``scipy.stats.ttest_rel`` on the per-session SUMS of hit
      (or rr) of a and of b. Its null, E[S_s] = 0, is exactly "the event-level
      metrics are equal" with sessions as the independent units (a test on
      per-session MEANS would instead weight every session equally and test a
      different quantity).

    With ``unit="event"`` every event is its own unit (n_s = 1): the bootstrap
    resamples events and the t-test is ``ttest_rel`` on per-event values.

    Zero variance is handled explicitly: when every S_s is equal (identical
    records give all zeros) the p-value is 1 if D = 0 and 0 otherwise, and
    both CIs collapse to [D, D].

Seed gap (:func:`seed_gap_test`)
    Per-seed metrics of a and b: Welch t-test (``scipy.stats.ttest_ind`` with
    ``equal_var=False``) and its 90% / 95% CI of the gap of means. The gap
    "exceeds the seed spread" when |mean_a - mean_b| > 2 x pooled sd, the
    pooled sd being sqrt(((n_a-1) sd_a^2 + (n_b-1) sd_b^2) / (n_a+n_b-2)); a
    side with one seed contributes no spread. Undefined (None / NaN) when
    n_a + n_b < 3, and the Welch test needs >= 2 seeds per side. With one
    seed on one side, :func:`one_sample_gap_test` tests the other side's
    per-seed metrics against that one value (one-sample t-test).

Multiple comparisons
    :func:`holm` (step-down, family-wise error) and :func:`benjamini_hochberg`
    (step-up, false discovery rate) adjust the p-values of one table; NaN
    p-values are left NaN and not counted.

Verdict (:func:`equivalence_verdict`), with band = margin x |reference metric|
(margin from the config, default 0.02 relative; reference = run b's metric):

    * "equivalent": the paired difference's 90% bootstrap CI lies inside
      [-band, +band] (TOST at alpha = 0.05), AND, when both runs have >= 2
      seeds, the Welch 90% CI of the seed-mean gap also lies inside the band
      (the runs are interchangeable up to the margin whichever seed is drawn);
    * "different": the paired difference's 95% bootstrap CI lies entirely
      outside the band (the gap is larger than the margin, not merely
      non-zero), its multiplicity-adjusted p-value is < alpha, AND, when both
      runs have >= 2 seeds, the Welch test on per-seed metrics (adjusted when
      an adjusted value is given) is also < alpha (the gap exceeds what
      changing the seed does);
    * "inconclusive": anything else, e.g. significant but smaller than the
      margin cannot be excluded, or the seed spread is too large to tell.

    A significant difference whose CI lies inside the band is "equivalent":
    at these sample sizes almost everything is significant, and the margin
    says what is big enough to matter.
"""
from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from .evaluation import DEFAULT_POLICY, per_event

METRICS = {"recall": "hit", "mrr": "rr"}
DEFAULT_N_BOOT = 2000
DEFAULT_MARGIN = 0.02
DEFAULT_ALPHA = 0.05
#: |gap| > SPREAD_FACTOR x pooled sd of the seeds counts as "exceeds the seed spread".
SPREAD_FACTOR = 2.0
_BOOT_CHUNK_CELLS = 4_000_000  # resampled indices held in memory at once


# --------------------------------------------------------------------------- seeds

def seed_summary(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sd (ddof=1) and number of per-seed values; sd is NaN when n = 1.

    NaN values are ignored. An empty input gives (NaN, NaN, 0). Identical
    values give exactly their value and sd 0 (``np.mean`` of three 0.1 is not
    0.1, and their ``np.std`` is 1.7e-17, which would feed a t-test noise).
    """
    v = np.asarray(list(values), dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if np.all(v == v[0]):
        return float(v[0]), (0.0 if n >= 2 else float("nan")), n
    sd = float(np.std(v, ddof=1)) if n >= 2 else float("nan")
    return float(np.mean(v)), sd, n


# ------------------------------------------------------------------ per-event values

def _check_metric(metric: str) -> str:
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)}") from None


def event_values(
    ranks: pd.DataFrame | Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
) -> pd.DataFrame:
    """One value per event: columns session_id, position, target, value.

    ``ranks`` is one rank record or a list of them (one per seed); with several
    the value is the mean over seeds of the event's hit / rr. All seeds must be
    on the same events with the same targets. Sorted by (session_id, position).
    """
    column = _check_metric(metric)
    records = [ranks] if isinstance(ranks, pd.DataFrame) else list(ranks)
    if not records:
        raise ValueError("event_values: no rank records given")
    merged: pd.DataFrame | None = None
    total = None
    for i, rec in enumerate(records):
        ev = per_event(rec, k=k, policy=policy)
        ev["target"] = rec["target"].to_numpy()
        ev = ev.sort_values(["session_id", "position"], kind="stable").reset_index(drop=True)
        if ev.duplicated(["session_id", "position"]).any():
            raise ValueError(f"rank record {i}: duplicated (session_id, position) events")
        if merged is None:
            merged = ev[["session_id", "position", "target"]].copy()
            total = ev[column].to_numpy(dtype=np.float64).copy()
            continue
        same = len(ev) == len(merged) and all(
            np.array_equal(ev[c].to_numpy(), merged[c].to_numpy())
            for c in ("session_id", "position", "target")
        )
        if not same:
            raise ValueError(
                f"rank record {i} (seed) is not on the same test events as record 0: "
                f"{len(ev)} vs {len(merged)} events, or different targets"
            )
        total += ev[column].to_numpy(dtype=np.float64)
    merged["value"] = total / len(records)
    return merged


def session_scores(
    ranks: pd.DataFrame | Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
    unit: str = "session",
) -> pd.Series:
    """Per-unit metric: mean over each session's events of hit (or rr).

    ``unit="session"``: a Series indexed by session_id. ``unit="event"``: one
    value per event, indexed by (session_id, position). Several rank records
    (seeds) are averaged per event first.
    """
    ev = event_values(ranks, metric, k, policy)
    if unit == "event":
        return ev.set_index(["session_id", "position"])["value"].rename(metric)
    if unit != "session":
        raise ValueError(f"unknown unit {unit!r}; use 'session' or 'event'")
    return ev.groupby("session_id", sort=True)["value"].mean().rename(metric)


# -------------------------------------------------------------- paired comparison

def _align(ea: pd.DataFrame, eb: pd.DataFrame, align: str,
           names: tuple[str, str] = ("a", "b")) -> tuple[pd.DataFrame, int, int]:
    """Join two event_values frames on (session_id, position)."""
    if align not in ("strict", "intersect"):
        raise ValueError(f"unknown align {align!r}; use 'strict' or 'intersect'")
    joined = ea.merge(eb, on=["session_id", "position"], how="inner", suffixes=("_a", "_b"))
    dropped_a, dropped_b = len(ea) - len(joined), len(eb) - len(joined)
    if align == "strict" and (dropped_a or dropped_b):
        raise ValueError(
            f"paired comparison of {names[0]!r} and {names[1]!r}: the rank records are not on the "
            f"same test events ({len(ea)} and {len(eb)} events, {len(joined)} in common); a paired "
            "test needs the same events (use unpaired_comparison where the test sets legitimately "
            "differ, and say so)"
        )
    bad = joined["target_a"].to_numpy() != joined["target_b"].to_numpy()
    if bad.any():
        raise ValueError(
            f"paired comparison of {names[0]!r} and {names[1]!r}: {int(bad.sum())} events have "
            "different targets in the two rank records (are they from the same test split?)"
        )
    return joined, dropped_a, dropped_b


def _per_unit(joined: pd.DataFrame, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-unit sums of a's values, of b's values, and event counts."""
    if unit == "event":
        va = joined["value_a"].to_numpy(dtype=np.float64)
        vb = joined["value_b"].to_numpy(dtype=np.float64)
        return va, vb, np.ones_like(va)
    if unit != "session":
        raise ValueError(f"unknown unit {unit!r}; use 'session' or 'event'")
    g = joined.groupby("session_id", sort=True)
    sums = g[["value_a", "value_b"]].sum()
    counts = g.size().to_numpy(dtype=np.float64)
    return (sums["value_a"].to_numpy(dtype=np.float64),
            sums["value_b"].to_numpy(dtype=np.float64), counts)


def bootstrap_ratio(
    sums: np.ndarray, counts: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates of sum(sums) / sum(counts), resampling units.

    Each replicate draws len(sums) units with replacement; vectorised in
    chunks so memory stays bounded. Same seed => same replicates.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    m = len(sums)
    if m == 0:
        raise ValueError("bootstrap over zero units")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, _BOOT_CHUNK_CELLS // m)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, m, size=(stop - start, m))
        out[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return out


def paired_comparison(
    ranks_a: pd.DataFrame | Sequence[pd.DataFrame],
    ranks_b: pd.DataFrame | Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    unit: str = "session",
    align: str = "strict",
    names: tuple[str, str] = ("a", "b"),
    policy_b: str | None = None,
) -> dict:
    """Paired comparison of run a against run b on the same test events.

    Records on different test events are refused with a ValueError naming
    ``names`` (the two runs) unless ``align="intersect"`` is asked for
    explicitly (the tables never do: a comparison whose test sets differ goes
    through :func:`unpaired_comparison`).

    ``ranks_a`` / ``ranks_b``: a rank record or a list of them (seeds; averaged
    per event first). Returns a dict with: metric_a, metric_b, diff (a - b),
    rel_diff (diff / metric_b), ci95 / ci90 (bootstrap percentile, tuples),
    ci95_t (t-based), rel_ci95 (ci95 / metric_b, b's metric taken as fixed), se, p (paired t-test), t, n_units, n_events,
    dropped_a / dropped_b (events only one side had, ``align="intersect"``),
    unit, metric, k, policy, policy_b, n_boot. See the module docstring for the method.

    ``policy_b``: b's protocol when it differs from a's (default ``policy``), e.g. a
    2016-2017 baseline under the random tie-break against GRU4Rec under optimistic ranks.
    """
    policy_b = policy_b or policy
    ea = event_values(ranks_a, metric, k, policy)
    eb = event_values(ranks_b, metric, k, policy_b)
    joined, dropped_a, dropped_b = _align(ea, eb, align, names)
    if joined.empty:
        raise ValueError("paired comparison: no test events in common")
    sa, sb, counts = _per_unit(joined, unit)
    d = sa - sb
    m = len(d)
    n_events = float(counts.sum())
    metric_a, metric_b = sa.sum() / n_events, sb.sum() / n_events
    diff = float(d.sum() / n_events)

    boot = bootstrap_ratio(d, counts, n_boot=n_boot, seed=seed)
    ci95 = tuple(float(x) for x in np.quantile(boot, [0.025, 0.975]))
    ci90 = tuple(float(x) for x in np.quantile(boot, [0.05, 0.95]))

    zero_variance = m < 2 or np.all(d == d[0])
    if zero_variance:
        se = 0.0
        t_stat = float("nan")
        # identical differences in every unit: nothing varies, so the test is
        # decided by the sign alone (one unit: nothing to test unless diff = 0)
        p = 1.0 if diff == 0 else (0.0 if m >= 2 else float("nan"))
        ci95_t = (diff, diff)
    else:
        resid = d - diff * counts
        se = float(np.sqrt(np.sum(resid**2) / (m * (m - 1))) / counts.mean())
        half = float(sps.t.ppf(0.975, m - 1)) * se
        ci95_t = (diff - half, diff + half)
        res = sps.ttest_rel(sa, sb)
        t_stat, p = float(res.statistic), float(res.pvalue)

    rel = diff / metric_b if metric_b != 0 else float("nan")
    rel_ci = tuple(x / metric_b if metric_b != 0 else float("nan") for x in ci95)
    return {
        "metric": metric, "k": k, "policy": policy, "policy_b": policy_b, "unit": unit,
        "metric_a": float(metric_a), "metric_b": float(metric_b),
        "diff": diff, "rel_diff": float(rel),
        "ci95": ci95, "ci90": ci90, "ci95_t": ci95_t, "rel_ci95": rel_ci,
        "se": se, "t": t_stat, "p": float(p),
        "n_units": int(m), "n_events": int(n_events),
        "dropped_a": int(dropped_a), "dropped_b": int(dropped_b),
        "n_boot": int(n_boot), "paired": True,
    }


def _session_sums(ev: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    g = ev.groupby("session_id", sort=True)["value"]
    return g.sum().to_numpy(dtype=np.float64), g.size().to_numpy(dtype=np.float64)


def ratio_se(sums: np.ndarray, counts: np.ndarray) -> float:
    """Linearisation SE of sum(sums) / sum(counts) with the units as independent draws.

    SE = sqrt(sum_s (S_s - R n_s)^2 / (m (m - 1))) / mean(n_s); 0 with one unit.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    m = len(sums)
    if m < 2:
        return 0.0
    r = sums.sum() / counts.sum()
    return float(np.sqrt(np.sum((sums - r * counts) ** 2) / (m * (m - 1))) / counts.mean())


def unpaired_comparison(
    ranks_a: pd.DataFrame | Sequence[pd.DataFrame],
    ranks_b: pd.DataFrame | Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    policy_b: str | None = None,
) -> dict:
    """Run a against run b when their test events differ (no pairing).

    For comparisons that are legitimately unpaired, e.g. a model evaluated on
    a dwell-boosted test set against one on the original test set. Each side's
    metric is a ratio over its own sessions (seeds averaged per event first).
    CI: percentile bootstrap resampling the sessions of each side
    independently (seeded). p: two-sided z-test of the difference with the
    linearisation SEs of the two independent ratios (:func:`ratio_se`), the
    large-sample test for a difference of two independent means. Returns the
    keys of :func:`paired_comparison` (dropped_a / dropped_b 0) with
    ``paired`` False; ``policy_b`` as in :func:`paired_comparison`.
    """
    policy_b = policy_b or policy
    sa, na = _session_sums(event_values(ranks_a, metric, k, policy))
    sb, nb = _session_sums(event_values(ranks_b, metric, k, policy_b))
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError("unpaired comparison: a side has no test events")
    metric_a, metric_b = float(sa.sum() / na.sum()), float(sb.sum() / nb.sum())
    diff = metric_a - metric_b
    boot = (bootstrap_ratio(sa, na, n_boot=n_boot, seed=seed)
            - bootstrap_ratio(sb, nb, n_boot=n_boot, seed=seed + 1))
    ci95 = tuple(float(x) for x in np.quantile(boot, [0.025, 0.975]))
    ci90 = tuple(float(x) for x in np.quantile(boot, [0.05, 0.95]))
    se = float(np.hypot(ratio_se(sa, na), ratio_se(sb, nb)))
    if se == 0:
        z, p, ci95_t = float("nan"), (1.0 if diff == 0 else 0.0), (diff, diff)
    else:
        z = diff / se
        p = float(2 * sps.norm.sf(abs(z)))
        ci95_t = (diff - 1.959963984540054 * se, diff + 1.959963984540054 * se)
    rel = diff / metric_b if metric_b != 0 else float("nan")
    rel_ci = tuple(x / metric_b if metric_b != 0 else float("nan") for x in ci95)
    return {
        "metric": metric, "k": k, "policy": policy, "policy_b": policy_b, "unit": "session",
        "metric_a": metric_a, "metric_b": metric_b, "diff": float(diff), "rel_diff": float(rel),
        "ci95": ci95, "ci90": ci90, "ci95_t": ci95_t, "rel_ci95": rel_ci,
        "se": se, "t": z, "p": float(p),
        "n_units": int(len(sa) + len(sb)), "n_events": int(na.sum() + nb.sum()),
        "n_events_a": int(na.sum()), "n_events_b": int(nb.sum()),
        "dropped_a": 0, "dropped_b": 0, "n_boot": int(n_boot), "paired": False,
    }


def same_events(ranks_a: pd.DataFrame, ranks_b: pd.DataFrame) -> bool:
    """Whether two rank records hold the same (session_id, position, target) events."""
    cols = ["session_id", "position", "target"]
    a = ranks_a[cols].sort_values(cols[:2], kind="stable").to_numpy()
    b = ranks_b[cols].sort_values(cols[:2], kind="stable").to_numpy()
    return a.shape == b.shape and bool(np.array_equal(a, b))


# ----------------------------------------------------------------------- seed gap

def seed_gap_test(
    per_seed_a: Iterable[float],
    per_seed_b: Iterable[float],
    spread_factor: float = SPREAD_FACTOR,
) -> dict:
    """Is the gap between two runs' seed means larger than what the seed changes?

    Returns mean_a, mean_b, gap (a - b), sd_a, sd_b, n_a, n_b, pooled_sd,
    exceeds_spread (|gap| > spread_factor x pooled_sd; None when undefined),
    welch_p, welch_t, welch_df, welch_ci90, welch_ci95 (NaN when either side
    has fewer than 2 seeds). Zero spread on both sides: p = 1 if the gap is 0
    else 0, and the CIs collapse to [gap, gap].
    """
    a = np.asarray(list(per_seed_a), dtype=np.float64)
    b = np.asarray(list(per_seed_b), dtype=np.float64)
    mean_a, sd_a, n_a = seed_summary(a)
    mean_b, sd_b, n_b = seed_summary(b)
    if n_a == 0 or n_b == 0:
        raise ValueError("seed_gap_test: each side needs at least one seed value")
    gap = mean_a - mean_b
    nan2 = (float("nan"), float("nan"))
    out = {
        "mean_a": mean_a, "mean_b": mean_b, "gap": gap, "sd_a": sd_a, "sd_b": sd_b,
        "n_a": n_a, "n_b": n_b, "pooled_sd": float("nan"), "exceeds_spread": None,
        "welch_p": float("nan"), "welch_t": float("nan"), "welch_df": float("nan"),
        "welch_ci90": nan2, "welch_ci95": nan2, "spread_factor": spread_factor,
    }
    dof = n_a + n_b - 2
    if dof >= 1:
        ss = (n_a - 1) * (sd_a if n_a > 1 else 0.0) ** 2 + (n_b - 1) * (sd_b if n_b > 1 else 0.0) ** 2
        pooled = float(np.sqrt(ss / dof))
        out["pooled_sd"] = pooled
        out["exceeds_spread"] = bool(abs(gap) > spread_factor * pooled)
    if n_a >= 2 and n_b >= 2:
        if sd_a == 0 and sd_b == 0:
            out["welch_p"] = 1.0 if gap == 0 else 0.0
            out["welch_ci90"] = out["welch_ci95"] = (gap, gap)
        else:
            with warnings.catch_warnings():
                if sd_a == 0 or sd_b == 0:  # one side's seeds are identical: scipy's variance of
                    # them is rounding (1e-34), which it flags; the test is Welch's with that side fixed
                    warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
                res = sps.ttest_ind(a[~np.isnan(a)], b[~np.isnan(b)], equal_var=False)
            out["welch_p"] = float(res.pvalue)
            out["welch_t"] = float(res.statistic)
            out["welch_df"] = float(res.df)
            out["welch_ci95"] = tuple(float(x) for x in res.confidence_interval(0.95))
            out["welch_ci90"] = tuple(float(x) for x in res.confidence_interval(0.90))
    return out


def one_sample_gap_test(per_seed_many: Iterable[float], one: float) -> float:
    """p of the one-sample t-test of a run's per-seed metrics against another run's one value.

    The seed-level test when one side has a single seed. NaN values are
    ignored; NaN when fewer than 2 values remain. Identical values (sd exactly
    0 by :func:`seed_summary`): p = 1 if they equal ``one`` else 0.
    """
    many = np.asarray(list(per_seed_many), dtype=np.float64)
    many = many[~np.isnan(many)]
    mean, sd, n = seed_summary(many)
    if n < 2:
        return float("nan")
    if sd == 0:
        return 1.0 if mean == one else 0.0
    return float(sps.ttest_1samp(many, one).pvalue)


# ------------------------------------------------------------ multiple comparisons

def _ascending(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, an all-NaN output of its shape, indices of the non-NaN p in ascending order, stable)."""
    p = np.asarray(pvalues, dtype=np.float64)
    ok = ~np.isnan(p)
    return p, np.full_like(p, np.nan), np.flatnonzero(ok)[np.argsort(p[ok], kind="stable")]


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as given; NaN stays NaN).

    Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j<=i} min(1, (m-j+1) p_(j)).
    """
    p, out, idx = _ascending(pvalues)
    m = len(idx)
    scaled = (m - np.arange(m)) * p[idx]
    out[idx] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (q-values); NaN stays NaN.

    Sorted ascending: adj_(i) = min_{j>=i} min(1, m p_(j) / j).
    """
    p, out, idx = _ascending(pvalues)
    m = len(idx)
    scaled = m * p[idx] / np.arange(1, m + 1)
    out[idx] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


ADJUSTMENTS = {"holm": holm, "bh": benjamini_hochberg}


def adjust(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjust one table's p-values with ``"holm"`` or ``"bh"``."""
    try:
        return ADJUSTMENTS[method](pvalues)
    except KeyError:
        raise ValueError(f"unknown correction {method!r}; use one of {sorted(ADJUSTMENTS)}") from None


# ------------------------------------------------------------------------ verdict

def _inside(ci: tuple[float, float], band: float) -> bool:
    return bool(-band <= ci[0] and ci[1] <= band)


def _outside(ci: tuple[float, float], band: float) -> bool:
    return bool(ci[0] > band or ci[1] < -band)


def equivalence_verdict(
    comparison: dict,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    p_adjusted: float | None = None,
    seed_gap: dict | None = None,
    welch_p_adjusted: float | None = None,
    reference: float | None = None,
) -> dict:
    """Verdict "equivalent" / "different" / "inconclusive" (rule in the module docstring).

    ``comparison``: a :func:`paired_comparison` result (its 90% / 95% bootstrap
    CIs and p). ``reference``: the metric the relative margin applies to
    (default: run b's metric). ``p_adjusted``: the difference test's p after the
    table's correction (default: the raw p). ``seed_gap``: a
    :func:`seed_gap_test` result, used when both sides have >= 2 seeds.
    Returns {"verdict", "band", "reason"}.
    """
    if not 0 <= margin:
        raise ValueError(f"margin must be >= 0, got {margin}")
    ref = comparison["metric_b"] if reference is None else reference
    band = margin * abs(ref)
    p = comparison["p"] if p_adjusted is None else p_adjusted
    ci90, ci95 = comparison["ci90"], comparison["ci95"]
    use_seeds = bool(seed_gap) and seed_gap["n_a"] >= 2 and seed_gap["n_b"] >= 2
    welch_p = None
    if use_seeds:
        welch_p = seed_gap["welch_p"] if welch_p_adjusted is None else welch_p_adjusted

    events_equiv = _inside(ci90, band)
    seeds_equiv = (not use_seeds) or _inside(seed_gap["welch_ci90"], band)
    if events_equiv and seeds_equiv:
        reason = f"90% CI of the difference inside +-{band:.4g}"
        if use_seeds:
            reason += " on test events and across seeds"
        return {"verdict": "equivalent", "band": band, "reason": reason}

    events_diff = _outside(ci95, band) and p < alpha
    seeds_diff = (not use_seeds) or (welch_p is not None and welch_p < alpha)
    if events_diff and seeds_diff:
        reason = f"95% CI outside +-{band:.4g}, adjusted p {p:.2g}"
        if use_seeds:
            reason += f", seed gap significant (Welch p {welch_p:.2g})"
        return {"verdict": "different", "band": band, "reason": reason}

    if events_equiv and not seeds_equiv:
        reason = "equivalent on test events but the seed spread does not exclude the margin"
    elif events_diff and not seeds_diff:
        reason = f"gap outside the margin on test events but within seed noise (Welch p {welch_p:.2g})"
    else:
        reason = f"CI of the difference overlaps the +-{band:.4g} band edge"
    return {"verdict": "inconclusive", "band": band, "reason": reason}


# ------------------------------------------------------------------ one run's CI

def metric_ci(
    ranks: pd.DataFrame | Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(value, low, high): one run's metric with a bootstrap-over-sessions CI.

    Several rank records (seeds) are averaged per event first, so the value is
    the mean over seeds and the interval reflects test-set sampling only.
    """
    ev = event_values(ranks, metric, k, policy)
    g = ev.groupby("session_id", sort=True)["value"]
    sums, counts = g.sum().to_numpy(), g.size().to_numpy(dtype=np.float64)
    value = float(sums.sum() / counts.sum())
    boot = bootstrap_ratio(sums, counts, n_boot=n_boot, seed=seed)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


def seed_half_width(per_seed: Iterable[float], level: float = 0.95) -> float:
    """Seed part of one run's CI: t((1 + level) / 2, n - 1) x sd / sqrt(n) of the per-seed
    values (NaN ignored; 0.0 with fewer than 2 seeds: no spread to measure)."""
    mean, sd, n = seed_summary(per_seed)
    if n < 2:
        return 0.0
    return float(sps.t.ppf((1 + level) / 2, n - 1)) * sd / float(np.sqrt(n))


def gap_seed_half_width(per_seed_a: Iterable[float], per_seed_b: Iterable[float],
                        level: float = 0.95) -> float:
    """Seed part of the CI of a difference a - b of seed means.

    Both sides with >= 2 seeds: Welch's t quantile (Welch-Satterthwaite df) x
    sqrt(sd_a^2 / n_a + sd_b^2 / n_b), the half-width of the Welch interval of
    :func:`seed_gap_test`; one side with one seed: that side adds no spread,
    :func:`seed_half_width` of the other; 0.0 when neither has 2 seeds.
    """
    _, sd_a, n_a = seed_summary(per_seed_a)
    _, sd_b, n_b = seed_summary(per_seed_b)
    if n_a < 2 or n_b < 2:
        return seed_half_width(per_seed_a if n_a >= 2 else per_seed_b, level)
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    if va + vb == 0:
        return 0.0
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    return float(sps.t.ppf((1 + level) / 2, df)) * float(np.sqrt(va + vb))


def seeds_sessions_interval(value: float, se_sessions: float, seed_half: float,
                            level: float = 0.95) -> tuple[float, float]:
    """value +- sqrt((z SE_sessions)^2 + seed_half^2), z the normal quantile of ``level``
    (the module docstring, "Seeds and sessions together")."""
    z = float(sps.norm.ppf((1 + level) / 2))
    half = float(np.hypot(z * se_sessions, seed_half))
    return value - half, value + half


def run_ci(
    ranks: Sequence[pd.DataFrame],
    metric: str = "recall",
    k: int = 20,
    policy: str = DEFAULT_POLICY,
    level: float = 0.95,
) -> dict:
    """One run's metric (mean over seeds) with a CI that covers what varies.

    ``ranks``: one rank record per seed, all on the same test events. SE_sessions
    is the linearisation SE (:func:`ratio_se`) of the seed-averaged record over
    test sessions. With one seed the interval is value +- z SE_sessions and
    covers test-session sampling only; with n >= 2 seeds it is
    value +- sqrt((z SE_sessions)^2 + (t(n-1) sd_seeds / sqrt(n))^2), covering
    test sessions and seeds together (sd_seeds: sd of the per-seed metrics; z the
    normal and t(n-1) Student's quantile of ``level``). Returns value, low, high,
    se_sessions, seed_half (the seed part's half-width, 0 with one seed), n_seeds,
    covers ("sessions" or "seeds+sessions").
    """
    records = [ranks] if isinstance(ranks, pd.DataFrame) else list(ranks)
    sums, counts = _session_sums(event_values(records, metric, k, policy))
    value = float(sums.sum() / counts.sum()) if len(sums) else float("nan")
    se = ratio_se(sums, counts)
    n = len(records)
    seed_half = 0.0
    if n >= 2:
        column = _check_metric(metric)
        per_seed = [per_event(r, k=k, policy=policy)[column].mean() for r in records]
        seed_half = seed_half_width(per_seed, level)
    low, high = seeds_sessions_interval(value, se, seed_half, level)
    return {"value": value, "low": low, "high": high, "se_sessions": se, "seed_half": seed_half,
            "n_seeds": n, "covers": "seeds+sessions" if n >= 2 else "sessions"}


def comparison_ci(comparison: dict, per_seed_a: Iterable[float], per_seed_b: Iterable[float],
                  level: float = 0.95) -> dict:
    """The CI of a comparison's difference a - b over seeds and sessions, as :func:`run_ci`'s.

    ``comparison``: a :func:`paired_comparison` / :func:`unpaired_comparison` result (its
    ``diff`` and ``se``, the sessions' linearisation SE of the seed-averaged difference);
    ``per_seed_a`` / ``per_seed_b``: each run's per-seed metric (the seed part,
    :func:`gap_seed_half_width`). Returns low, high, rel_low, rel_high (divided by b's
    metric), se_sessions, seed_half and covers ("seeds+sessions" when a side has >= 2
    seeds, else "sessions").
    """
    a = [x for x in per_seed_a if not np.isnan(x)]
    b = [x for x in per_seed_b if not np.isnan(x)]
    seed_half = gap_seed_half_width(a, b, level)
    low, high = seeds_sessions_interval(comparison["diff"], comparison["se"], seed_half, level)
    ref = comparison["metric_b"]
    rel = (low / ref, high / ref) if ref != 0 else (float("nan"), float("nan"))
    return {"low": low, "high": high, "rel_low": rel[0], "rel_high": rel[1],
            "se_sessions": comparison["se"], "seed_half": seed_half,
            "covers": "seeds+sessions" if max(len(a), len(b)) >= 2 else "sessions"}
