"""The published numbers the study holds its results against (SPEC.md sections 4 and 8).

Every number is RSC15 (official split), as printed in its source. Each
:class:`Published` carries

* ``source``: the paper and table, or the repository file, it is printed in;
* ``setting``: what was trained (as the source states it);
* ``params``: the published hyperparameters, in the keys of
  :func:`gru4rec_repro.gru4rec_params.resolve` (GRU4Rec) or of the baseline's
  ``DEFAULTS`` (POP, S-POP, Item-KNN, BPR-MF), only those the source states (SPEC.md
  sections 4, 6 and 8); the tables print every key where a run differs from it;
* ``protocol``: how it was measured, in words, and ``policy``: the protocol of
  :mod:`gru4rec_repro.evaluation` that reproduces that measurement, so a table
  can put ours under the same protocol next to it:

  - the 2016-2017 papers (ICLR 2016, Bogina & Kuflik 2017, CIKM 2018) were
    measured by the authors' code of that time: optimistic ranks, a hit only
    when rank < 20 -> ``paper2016``; their baselines may have used a random
    tie-break with the same cut (``paper2016_random``; the baselines and
    iclr2016 tables show ours under it too);
  - the authors' figures of 2018 and later (the official PyTorch README, the
    Theano ``run_rsc15.py`` script) use conservative ties, rank <= 20 ->
    ``conservative``;
  - the tutorial's own tables are labelled "as printed in the tutorial"; the
    numbers they cite were measured with the 2016-2017 code, so they are
    compared under ``paper2016``.

The tutorial's Keras port publishes no exact numbers (SPEC.md section 5), so
there is no entry for it. Tables look numbers up with :func:`published`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The cut-off every published table uses.
PAPER_CUTOFF = 20

ICLR2016_T1 = "ICLR 2016 (Hidasi et al.), Table 1"
ICLR2016_T3 = "ICLR 2016 (Hidasi et al.), Table 3"
TUTORIAL_BASELINES = "tutorial, baselines table"
TUTORIAL_LOSSES = "tutorial, loss-function table (cites CIKM 2018, 2^11 extra negative samples)"
BOGINA2017 = "Bogina & Kuflik 2017 (RecTemp), dwell-time table"
README = "official GRU4Rec PyTorch README (hidasib/GRU4Rec_PyTorch_Official), 'Results'"
RUN_RSC15 = "hidasib/GRU4Rec examples/rsc15/run_rsc15.py"

PROTOCOL_2016 = "2016-2017 code: optimistic rank, hit when rank < 20"
PROTOCOL_2016_BASELINES = ("2016-2017 code: optimistic or random tie-break, hit when rank < 20 "
                           "(ours shown under both)")
PROTOCOL_2018 = "2018+ code: conservative ties, rank <= 20"
PROTOCOL_TUTORIAL = "as printed in the tutorial (cited numbers from the 2016-2017 code, rank < 20)"


@dataclass(frozen=True)
class Published:
    """One published result: metric values ("recall@20", "mrr@20", ...) and where they are from."""

    values: dict
    source: str
    setting: str
    protocol: str
    policy: str
    note: str = ""
    params: dict = field(default_factory=dict)

    def get(self, metric: str, k: int = PAPER_CUTOFF) -> float:
        """``metric`` is ``"recall"`` or ``"mrr"``; NaN when the source prints no value at ``k``."""
        if metric not in ("recall", "mrr"):
            raise ValueError(f"unknown metric {metric!r}; use 'recall' or 'mrr'")
        return float(self.values.get(f"{metric}@{k}", float("nan")))

    @property
    def recall(self) -> float:
        return self.get("recall")

    @property
    def mrr(self) -> float:
        return self.get("mrr")

    def cite(self) -> str:
        """One line for a table note: source; setting; protocol."""
        text = f"{self.source}; setting: {self.setting}; protocol: {self.protocol}"
        return text + (f" ({self.note})" if self.note else "")


def _p(recall: float, mrr: float, source: str, setting: str, protocol: str, policy: str,
       note: str = "", params: dict | None = None, **more: float) -> Published:
    values = {"recall@20": recall, "mrr@20": mrr}
    values.update({k.replace("_at_", "@"): v for k, v in more.items()})
    return Published(values, source, setting, protocol, policy, note, dict(params or {}))


_ICLR_BASE = dict(protocol=PROTOCOL_2016_BASELINES, policy="paper2016")
_POP = _p(0.0050, 0.0012, ICLR2016_T1, "POP: top 100 by support", params={"top_n": 100}, **_ICLR_BASE)
_SPOP = _p(0.2672, 0.1775, ICLR2016_T1, "S-POP: session counts + POP tie-break", params={"top_n": 100},
           **_ICLR_BASE)
_IKNN = _p(0.5065, 0.2048, ICLR2016_T1, "Item-KNN: last item, cosine, lambda 20, 100 neighbours",
           params={"lmbd": 20, "alpha": 0.5, "neighbors": 100}, **_ICLR_BASE)
_BPRMF = _p(0.2574, 0.0618, ICLR2016_T1, "BPR-MF: 100 factors, session = mean of item factors",
            params={"factors": 100, "n_epochs": 10, "learning_rate": 0.01}, **_ICLR_BASE)
_TUT_BASE = ("as printed in the tutorial's baselines table, which copies ICLR 2016 Table 1 for "
             "POP, S-POP and BPR-MF")
#: ICLR 2016 Table 3 states one-hot input and no extra samples for every row (SPEC.md section 8);
#: the TOP1/BPR rows had a tanh output, cross-entropy a softmax (section 4: final_act linear,
#: the softmax being part of the loss); batch, learning rate, dropout and session order are
#: stated only for the 2016 TOP1 setting of run_rsc15.py (section 4), whose numbers are TOP1-100's.
_ONE_HOT = {"embedding": 0, "constrained_embedding": False, "n_sample": 0}
_TOP1_2016 = {"loss": "top1", "final_act": "tanh", "layers": [100], **_ONE_HOT, "batch_size": 50,
              "dropout_p_hidden": 0.5, "learning_rate": 0.01, "time_sort": False, "n_epochs": 10}
_TOP1_2016_TEXT = ("GRU4Rec TOP1, 100 units, one-hot input, no extra samples, tanh output, batch 50, "
                   "dropout_p_hidden 0.5, lr 0.01, sessions in SessionId order, 10 epochs (the 2016 "
                   "TOP1 setting of run_rsc15.py)")


def _iclr_gru(loss: str, units: int, recall: float, mrr: float) -> Published:
    label = {"top1": "TOP1", "bpr": "BPR", "cross-entropy": "cross-entropy"}[loss]
    if loss == "top1" and units == 100:
        return _p(recall, mrr, ICLR2016_T3, _TOP1_2016_TEXT, PROTOCOL_2016, "paper2016", params=_TOP1_2016)
    act = "softmax" if loss == "cross-entropy" else "tanh"
    return _p(recall, mrr, ICLR2016_T3,
              f"GRU4Rec {label}, {units} units, one-hot input, no extra samples, {act} output "
              "(batch, learning rate, dropout and session order not stated)",
              PROTOCOL_2016, "paper2016",
              params={"loss": loss, "final_act": "linear" if loss == "cross-entropy" else "tanh",
                      "layers": [units], **_ONE_HOT})


def _tut(p: Published) -> Published:
    return Published(p.values, f"{TUTORIAL_BASELINES} = {p.source}", p.setting, p.protocol, p.policy,
                     _TUT_BASE, p.params)


def _tutorial_loss(loss: str, key: str, recall: float, mrr: float, note: str = "") -> Published:
    return _p(recall, mrr, TUTORIAL_LOSSES, f"{loss}, 2048 extra samples", PROTOCOL_TUTORIAL, "paper2016",
              note=note, params={"loss": key, "n_sample": 2048})


#: What every tuned setting of SPEC.md section 4 shares.
_TUNED = {"layers": [100], "batch_size": 32, "n_epochs": 10, "n_sample": 2048}

#: (table, row) -> published value.
PUBLISHED: dict[tuple[str, str], Published] = {
    # The tutorial's baselines table (POP, S-POP, BPR-MF copied from ICLR 2016 Table 1; its
    # Item-KNN is missing) and its "GRU4Rec" row, which is its own loss table's cross-entropy row.
    ("baselines", "POP"): _tut(_POP),
    ("baselines", "S-POP"): _tut(_SPOP),
    ("baselines", "Item-KNN"): _IKNN,
    ("baselines", "BPR-MF"): _tut(_BPRMF),
    ("baselines", "GRU4Rec"): _p(
        0.5781, 0.2375, TUTORIAL_BASELINES, "GRU4Rec, cross-entropy (setting not printed)",
        PROTOCOL_TUTORIAL, "paper2016",
        note="the same numbers as the tutorial's loss-table cross-entropy row; not an ICLR 2016 number",
        params={"loss": "cross-entropy"}),
    # ICLR 2016, Table 1 (baselines) and Table 3 (GRU4Rec variants).
    ("iclr2016", "POP"): _POP,
    ("iclr2016", "S-POP"): _SPOP,
    ("iclr2016", "Item-KNN"): _IKNN,
    ("iclr2016", "BPR-MF"): _BPRMF,
    ("iclr2016", "TOP1, 100 units"): _iclr_gru("top1", 100, 0.5853, 0.2305),
    ("iclr2016", "BPR, 100 units"): _iclr_gru("bpr", 100, 0.6069, 0.2407),
    ("iclr2016", "cross-entropy, 100 units"): _iclr_gru("cross-entropy", 100, 0.6074, 0.2430),
    ("iclr2016", "TOP1, 1000 units"): _iclr_gru("top1", 1000, 0.6206, 0.2693),
    ("iclr2016", "BPR, 1000 units"): _iclr_gru("bpr", 1000, 0.6322, 0.2467),
    ("iclr2016", "cross-entropy, 1000 units"): _iclr_gru("cross-entropy", 1000, 0.5777, 0.2153),
    # The tutorial's loss-function table (as printed; its BPR row equals ICLR 2016's 1000-unit
    # BPR to four digits, so the source of each row is uncertain).
    ("losses", "cross-entropy"): _tutorial_loss("cross-entropy", "cross-entropy", 0.5781, 0.2375),
    ("losses", "TOP1"): _tutorial_loss("TOP1", "top1", 0.6117, 0.2367),
    ("losses", "BPR"): _tutorial_loss("BPR", "bpr", 0.6322, 0.2467,
                                      note="equals ICLR 2016's BPR with 1000 units to four digits"),
    ("losses", "TOP1-max"): _tutorial_loss("TOP1-max", "top1-max", 0.7086, 0.3045),
    ("losses", "BPR-max"): _tutorial_loss("BPR-max", "bpr-max", 0.7211, 0.3170),
    # The authors' own figures for their tuned settings (SPEC.md section 4), 2018+ protocol.
    ("authors_current", "cross-entropy, README best"): _p(
        0.7283, 0.3205, README,
        "cross-entropy, constrained embedding, dropout 0.1/0, lr 0.1, momentum 0, sample_alpha 0.75, "
        "logq 1, 2048 extra samples, batch 32, 10 epochs",
        PROTOCOL_2018, "conservative",
        params={**_TUNED, "loss": "cross-entropy", "embedding": 0, "constrained_embedding": True,
                "dropout_p_embed": 0.1, "dropout_p_hidden": 0.0, "learning_rate": 0.1, "momentum": 0.0,
                "sample_alpha": 0.75, "logq": 1.0, "elu_param": 0.0},
        recall_at_1=0.1845, mrr_at_1=0.1845, recall_at_5=0.4906, mrr_at_5=0.2954,
        recall_at_10=0.6218, mrr_at_10=0.3130),
    ("authors_current", "BPR-max, constrained embedding"): _p(
        0.7261, 0.3124, RUN_RSC15 + " with param_samples/rsc15_bpr-max_constrained.py",
        "BPR-max, ELU 0.5, constrained embedding, dropout 0/0, lr 0.2, momentum 0.1, sample_alpha 0, "
        "bpreg 0.5, 2048 extra samples, batch 32, 10 epochs",
        PROTOCOL_2018, "conservative",
        params={**_TUNED, "loss": "bpr-max", "final_act": "elu", "elu_param": 0.5, "embedding": 0,
                "constrained_embedding": True, "dropout_p_embed": 0.0, "dropout_p_hidden": 0.0,
                "learning_rate": 0.2, "momentum": 0.1, "sample_alpha": 0.0, "bpreg": 0.5}),
    ("authors_current", "BPR-max, no embedding"): _p(
        0.7197, 0.3157, RUN_RSC15,
        "BPR-max, ELU 0.5, one-hot input, lr 0.2, momentum 0.3, sample_alpha 0, bpreg 1, "
        "2048 extra samples, batch 32, 10 epochs",
        PROTOCOL_2018, "conservative",
        params={**_TUNED, "loss": "bpr-max", "final_act": "elu", "elu_param": 0.5, "embedding": 0,
                "constrained_embedding": False, "learning_rate": 0.2, "momentum": 0.3,
                "sample_alpha": 0.0, "bpreg": 1.0}),
    ("authors_current", "cross-entropy, no embedding (2018)"): _p(
        0.7180, 0.3087, RUN_RSC15,
        "cross-entropy, one-hot input, dropout_p_hidden 0.3, lr 0.1, momentum 0.7, sample_alpha 0, "
        "no logq, 2048 extra samples, batch 32, 10 epochs",
        PROTOCOL_2018, "conservative",
        params={**_TUNED, "loss": "cross-entropy", "embedding": 0, "constrained_embedding": False,
                "dropout_p_hidden": 0.3, "learning_rate": 0.1, "momentum": 0.7, "sample_alpha": 0.0,
                "logq": 0.0}),
    # Bogina & Kuflik 2017 (their GRU4Rec rows cite ICLR 2016 and the 2017 sampling version; the
    # sampling version's setting is not stated).
    ("dwell", "GRU4Rec"): _p(0.5853, 0.2305, BOGINA2017, "GRU4Rec TOP1, no extra samples (= ICLR 2016 TOP1-100)",
                             PROTOCOL_2016, "paper2016", params=_TOP1_2016),
    ("dwell", "GRU4Rec, dwell threshold 75"): _p(0.7885, 0.5834, BOGINA2017, "as above, dwell threshold 75 s",
                                                 PROTOCOL_2016, "paper2016", params=_TOP1_2016),
    ("dwell", "GRU4Rec, dwell threshold 100"): _p(0.7754, 0.548, BOGINA2017, "as above, dwell threshold 100 s",
                                                  PROTOCOL_2016, "paper2016", params=_TOP1_2016),
    ("dwell", "GRU4Rec with sampling"): _p(0.7117, 0.308, BOGINA2017,
                                           "GRU4Rec 2017 with extra samples (setting not stated)",
                                           PROTOCOL_2016, "paper2016"),
    ("dwell", "with sampling, dwell threshold 100"): _p(0.84, 0.61, BOGINA2017,
                                                        "with sampling, dwell threshold 100 s",
                                                        PROTOCOL_2016, "paper2016"),
    ("dwell", "with sampling, dwell threshold 75"): _p(0.853, 0.636, BOGINA2017,
                                                       "with sampling, dwell threshold 75 s",
                                                       PROTOCOL_2016, "paper2016"),
}

#: The papers' claims the ``claims`` table tests (claimed relative gains at R@20 / MRR@20).
CLAIMS = {
    "iclr2016_gru_vs_iknn": {
        "source": "ICLR 2016, Section 4 / Table 3: best GRU4Rec vs Item-KNN",
        "recall": 0.20, "mrr": 0.30,
    },
    "cikm2018_max_vs_pairwise": {
        "source": "CIKM 2018 (Hidasi & Karatzoglou): TOP1-max > TOP1 and BPR-max > BPR with the same sampling",
    },
    "cikm2018_max_vs_xe": {
        "source": ("CIKM 2018 as the tutorial's loss table presents it: the max losses beat cross-entropy "
                   "with the same sampling"),
    },
    "bogina2017_dwell": {
        "source": "Bogina & Kuflik 2017: dwell-time boosting improves GRU4Rec",
    },
}


def published(table: str, row: str) -> Published | None:
    """The published value of ``row`` in ``table``, or None when the source has none."""
    return PUBLISHED.get((table, row))


def rows_of(table: str) -> list[str]:
    """The rows with a published value in ``table``, in the order above."""
    return [r for (t, r) in PUBLISHED if t == table]
