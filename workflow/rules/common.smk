# Config validation and the helpers every stage uses.
import dataclasses
import json
import os
import re

from snakemake.utils import validate

from gru4rec_repro.contract import DETERMINISTIC, NEURAL, run_params
from gru4rec_repro.data.synthetic import SyntheticConfig


validate(config, schema="../schemas/config.schema.yaml")

STUDY = config["study"]
DATASETS = STUDY["datasets"] or list(config["datasets"])
RUNS = STUDY["runs"] or list(config["runs"])
SEEDS = STUDY["seeds"]
SPLITS = ["train_full", "test", "train_tr", "train_valid"]
TABLES = list(__import__("gru4rec_repro.tables", fromlist=["TABLES"]).TABLES)  # every module of gru4rec_repro/tables/
FIGURES = ["training_loss", "metric_bars", "epoch_seconds"]

for _name in DATASETS:
    if _name not in config["datasets"]:
        raise ValueError(
            f"config: study.datasets names {_name!r}, which is not under datasets: "
            f"(known: {', '.join(config['datasets'])})"
        )
_generator_keys = {f.name for f in dataclasses.fields(SyntheticConfig)} | {"source"}
for _name, _spec in config["datasets"].items():
    _unknown = sorted(set(_spec) - _generator_keys) if _spec["source"] == "synthetic" else []
    if _unknown:
        raise ValueError(
            f"config: datasets.{_name}: unknown synthetic generator key(s) {_unknown} "
            "(see docs/SYNTHETIC.md)"
        )
for _name in RUNS:
    if _name not in config["runs"]:
        raise ValueError(
            f"config: study.runs names {_name!r}, which is not under runs: "
            f"(known: {', '.join(config['runs'])})"
        )


wildcard_constraints:
    dataset=r"[A-Za-z0-9._-]+",
    run=r"[A-Za-z0-9._-]+",
    seed=r"\d+",
    variant=r"dwell[0-9.]+-(train|traintest)",
    split="|".join(SPLITS),


def fmt_number(x):
    """75.0 -> '75', 12.5 -> '12.5' (for folder names)."""
    return str(int(x)) if float(x).is_integer() else str(x)


def variant_of(run):
    """Name of the derived split a run trains on ('' = the dataset's own split)."""
    dwell = config["runs"][run].get("dwell")
    if not dwell:
        return ""
    return f"dwell{fmt_number(dwell['threshold'])}-{dwell['apply_to'].replace('+', '')}"


def data_dir(dataset, run):
    return os.path.join("results", dataset, "data", variant_of(run))


def run_splits(wildcards):
    """The train and test files of a run (train_full/test, or train_tr/train_valid when tuning)."""
    train, test = ("train_full", "test") if STUDY["eval_split"] == "test" else ("train_tr", "train_valid")
    d = data_dir(wildcards.dataset, wildcards.run)
    return {"train": os.path.join(d, f"{train}.parquet"), "test": os.path.join(d, f"{test}.parquet")}


def is_deterministic(run):
    return config["runs"][run]["implementation"] in DETERMINISTIC


def seeds_of(run):
    """Deterministic implementations run once, with the first seed."""
    return SEEDS[:1] if is_deterministic(run) else SEEDS


def run_names(deterministic):
    """A regex matching exactly the (non-)deterministic runs' names (a rule's wildcard constraint)."""
    names = [re.escape(r) for r in config["runs"] if is_deterministic(r) == deterministic]
    return "|".join(names) if names else "(?!)"  # (?!) matches nothing


def is_neural(run):
    return config["runs"][run]["implementation"] in NEURAL


def hyperparameters(run):
    """A run's params as its implementation gets them (gru4rec_repro.contract.run_params)."""
    return run_params(config, run)


def run_outputs(dataset, name):
    return [f"results/{dataset}/runs/{run}/seed{seed}/{name}" for run in RUNS for seed in seeds_of(run)]


def study_config_json():
    """The part of the config the tables and figures read (runs of the study, seeds, statistics)."""
    runs = {r: dict(config["runs"][r], params=hyperparameters(r)) for r in RUNS}
    # Not sorted: tables and figures list runs in the config's order.
    return json.dumps({"runs": runs, "seeds": SEEDS, "study": STUDY})


def all_targets():
    targets = []
    for dataset in DATASETS:
        targets += run_outputs(dataset, "metrics.json")
        targets += expand("results/{dataset}/tables/{table}.md", dataset=dataset, table=TABLES)
        targets += expand("results/{dataset}/figures/{figure}.png", dataset=dataset, figure=FIGURES)
    return targets
