"""The published numbers the study holds its results against (SPEC.md section 8).

Every number is RSC15 (official split), Recall@20 / MRR@20, as printed in its
source. Tables look them up by (table, row) in :data:`PUBLISHED`; each entry
keeps its source so a table's note can cite it.

Sources, as named in the tables' notes:

* ``"ICLR 2016"``: Hidasi et al., Session-based recommendations with recurrent
  neural networks (the baselines and the 100 / 1000 unit GRU4Rec variants);
* ``"CIKM 2018 (tutorial table)"``: the loss-function table of the tutorial,
  attributed to Hidasi & Karatzoglou, Recurrent neural networks with top-k
  gains (2048 extra negative samples);
* ``"Bogina & Kuflik 2017"``: Incorporating dwell time in session-based
  recommendations with recurrent neural networks (RecTemp 2017);
* ``"tutorial Keras port"``: what the tutorial's own Keras port reported.
"""
from __future__ import annotations

from dataclasses import dataclass

ICLR2016 = "ICLR 2016"
CIKM2018 = "CIKM 2018 (tutorial table)"
BOGINA2017 = "Bogina & Kuflik 2017"
KERAS_PORT = "tutorial Keras port"


@dataclass(frozen=True)
class Published:
    """One published result: Recall@20 and MRR@20 on RSC15, and where it is from."""

    recall: float
    mrr: float
    source: str

    def get(self, metric: str) -> float:
        """``metric`` is ``"recall"`` or ``"mrr"`` (at 20, the only cut-off papers print)."""
        if metric == "recall":
            return self.recall
        if metric == "mrr":
            return self.mrr
        raise ValueError(f"unknown metric {metric!r}; use 'recall' or 'mrr'")


#: The cut-off every published table uses.
PAPER_CUTOFF = 20

#: (table, row) -> published value. Tables are the study's table names; rows
#: are the row keys the table code uses.
PUBLISHED: dict[tuple[str, str], Published] = {
    # Tutorial, baselines table (from ICLR 2016).
    ("baselines", "POP"): Published(0.0050, 0.0012, ICLR2016),
    ("baselines", "S-POP"): Published(0.2672, 0.1775, ICLR2016),
    ("baselines", "Item-KNN"): Published(0.5065, 0.2048, ICLR2016),
    ("baselines", "BPR-MF"): Published(0.2574, 0.0618, ICLR2016),
    ("baselines", "GRU4Rec"): Published(0.5781, 0.2375, ICLR2016),
    # ICLR 2016, GRU4Rec variants.
    ("iclr2016", "TOP1, 100 units"): Published(0.5853, 0.2305, ICLR2016),
    ("iclr2016", "BPR, 100 units"): Published(0.6069, 0.2407, ICLR2016),
    ("iclr2016", "cross-entropy, 100 units"): Published(0.6074, 0.2430, ICLR2016),
    ("iclr2016", "TOP1, 1000 units"): Published(0.6206, 0.2693, ICLR2016),
    ("iclr2016", "BPR, 1000 units"): Published(0.6322, 0.2467, ICLR2016),
    ("iclr2016", "cross-entropy, 1000 units"): Published(0.5777, 0.2153, ICLR2016),
    # Tutorial, loss-function table (CIKM 2018, 2048 extra negative samples).
    ("losses", "cross-entropy"): Published(0.5781, 0.2375, CIKM2018),
    ("losses", "TOP1"): Published(0.6117, 0.2367, CIKM2018),
    ("losses", "BPR"): Published(0.6322, 0.2467, CIKM2018),
    ("losses", "TOP1-max"): Published(0.7086, 0.3045, CIKM2018),
    ("losses", "BPR-max"): Published(0.7211, 0.3170, CIKM2018),
    # Bogina & Kuflik 2017, dwell time.
    ("dwell", "GRU4Rec"): Published(0.5853, 0.2305, BOGINA2017),
    ("dwell", "GRU4Rec, dwell threshold 75"): Published(0.7885, 0.5834, BOGINA2017),
    ("dwell", "GRU4Rec, dwell threshold 100"): Published(0.7754, 0.548, BOGINA2017),
    ("dwell", "GRU4Rec with sampling"): Published(0.7117, 0.308, BOGINA2017),
    ("dwell", "with sampling, dwell threshold 100"): Published(0.84, 0.61, BOGINA2017),
    ("dwell", "with sampling, dwell threshold 75"): Published(0.853, 0.636, BOGINA2017),
    # The tutorial's own Keras port.
    ("keras_port", "Item-KNN"): Published(0.507, 0.205, KERAS_PORT),
    ("keras_port", "GRU4Rec"): Published(0.607, 0.243, KERAS_PORT),
    ("keras_port", "GRU4Rec + dwell"): Published(0.647, 0.275, KERAS_PORT),
}


def published(table: str, row: str) -> Published | None:
    """The published value of ``row`` in ``table``, or None when the paper has none."""
    return PUBLISHED.get((table, row))


#: The tuned RSC15 settings of SPEC.md section 4 (one GRU layer of 100 units,
#: batch 32, 10 epochs unless said otherwise), with what the authors report.
#: Parameter names follow implementations/GRU4REC_API.md. Kept as reference for
#: the config's defaults; the tables do not use them.
TUNED_SETTINGS: dict[str, dict] = {
    "cross-entropy (current best)": {
        "params": {
            "loss": "cross-entropy", "layers": [100], "batch_size": 32, "n_epochs": 10,
            "constrained_embedding": True, "dropout_p_hidden": 0.4,
            "learning_rate": 0.2, "momentum": 0.2, "n_sample": 2048,
            "sample_alpha": 0.5, "logq": 1.0,
        },
        "reported": Published(0.7283, 0.3205, "GRU4Rec authors (SPEC.md section 4)"),
    },
    "BPR-max, constrained": {
        "params": {
            "loss": "bpr-max", "layers": [100], "batch_size": 32, "n_epochs": 10,
            "constrained_embedding": True, "learning_rate": 0.2, "momentum": 0.1,
            "bpreg": 0.5, "n_sample": 2048, "final_act": "linear",
        },
        "reported": Published(0.7261, 0.3124, "GRU4Rec authors (SPEC.md section 4)"),
    },
    "BPR-max, no embedding": {
        "params": {
            "loss": "bpr-max", "layers": [100], "batch_size": 32, "n_epochs": 10,
            "embedding": 0, "constrained_embedding": False,
            "final_act": "elu", "elu_param": 0.5, "learning_rate": 0.2, "momentum": 0.3,
            "sample_alpha": 0.0, "bpreg": 1.0,
        },
        "reported": Published(0.7197, 0.3157, "GRU4Rec authors (SPEC.md section 4)"),
    },
    "2016 TOP1": {
        "params": {
            "loss": "top1", "final_act": "tanh", "layers": [100], "batch_size": 50,
            "embedding": 0, "constrained_embedding": False,
            "n_epochs": 10, "dropout_p_hidden": 0.5, "learning_rate": 0.01, "n_sample": 0,
        },
        "reported": Published(0.5853, 0.2305, ICLR2016),
    },
}
