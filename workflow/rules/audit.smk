# Audit: GRU4Rec implementations we did not write (implementations/external/<name>/),
# each trained in its own Python environment on the study's split and ranked under
# the same contract; the `audit` table compares them with the authors' code and ours.
# config/audit.yaml adds the panel to a study; without external runs nothing here runs.
# See docs/AUDIT.md.

import re
import sys

from gru4rec_repro.contract import EXTERNAL

EXTERNAL_CONFIG = config.get("external") or {}
# Environments are built here (one folder per implementation and requirements hash).
ENV_CACHE = EXTERNAL_CONFIG.get("cache") or "results/envs"
AUTHORS_CHECKOUT = (EXTERNAL_CONFIG.get("authors") or {}).get("checkout")

# external.panel: runs added to the study's runs (so that the panel joins a study
# whose study.runs lists its runs, e.g. config/test.yaml).
for _run in EXTERNAL_CONFIG.get("panel") or []:
    if _run not in config["runs"]:
        raise ValueError(f"config: external.panel names {_run!r}, which is not under runs:")
    if _run not in RUNS:
        RUNS.append(_run)


def is_external(run):
    return config["runs"][run]["implementation"] in EXTERNAL


# The authors' code runs only from a checkout the user points at (its licence
# allows research use only, so the project never copies it). Without one its
# runs leave the study, and the audit table says so.
if not AUTHORS_CHECKOUT:
    _dropped = [r for r in RUNS if config["runs"][r]["implementation"] == "authors"]
    if _dropped:
        print(f"audit: external.authors.checkout is not set; runs {_dropped} are left out "
              "(the audit table notes it)", file=sys.stderr)
        RUNS[:] = [r for r in RUNS if r not in _dropped]

EXTERNAL_RUNS = [r for r in RUNS if is_external(r)]


def external_options():
    """Per-implementation options the adapters read ($GRU4REC_EXTERNAL_OPTIONS)."""
    opts = {}
    if AUTHORS_CHECKOUT:
        opts["authors"] = {"checkout": os.path.abspath(os.path.expanduser(AUTHORS_CHECKOUT))}
    return json.dumps(opts)


def external_hyperparameters(run):
    """An external run's params; study.epochs applies as to our GRU4Rec runs (same setting)."""
    params = dict(config["runs"][run].get("params") or {})
    if STUDY["epochs"]:
        params["n_epochs"] = STUDY["epochs"]
    return params


rule build_environment:
    input:
        "implementations/external/{implementation}/requirements.txt",
    output:
        "results/envs/{implementation}.json",
    log:
        "results/logs/envs/{implementation}.log",
    benchmark:
        "results/benchmarks/envs/{implementation}.tsv"
    params:
        cache=ENV_CACHE,
    wildcard_constraints:
        implementation="|".join(EXTERNAL),
    resources:
        mem_mb=4000,
    shell:
        "python -m gru4rec_repro.external build --implementation {wildcards.implementation}"
        " --cache {params.cache:q} --marker {output} > {log} 2>&1"


rule train_external:
    input:
        unpack(run_splits),
        env=lambda w: f"results/envs/{config['runs'][w.run]['implementation']}.json",
    output:
        ranks=expand("results/{{dataset}}/runs/{{run}}/seed{seed}/ranks.parquet", seed=SEEDS),
        metrics=expand("results/{{dataset}}/runs/{{run}}/seed{seed}/metrics.json", seed=SEEDS),
    log:
        "results/logs/{dataset}/runs/{run}.log",
    benchmark:
        "results/benchmarks/{dataset}/runs/{run}.tsv"
    params:
        implementation=lambda w: config["runs"][w.run]["implementation"],
        hyper=lambda w: json.dumps(external_hyperparameters(w.run), sort_keys=True),
        seeds=" ".join(str(s) for s in SEEDS),
        device=STUDY["device"],
        cache=ENV_CACHE,
        options=external_options(),
    wildcard_constraints:
        run="|".join(re.escape(r) for r in EXTERNAL_RUNS) or "(?!)",
    threads: STUDY["threads"]
    resources:
        gpu=STUDY["gpu_per_job"],
        mem_mb=STUDY["mem_mb"],
        runtime=STUDY["runtime"] * len(SEEDS),
    shell:
        "GRU4REC_EXTERNAL_CACHE={params.cache:q} GRU4REC_EXTERNAL_OPTIONS={params.options:q}"
        " python -m gru4rec_repro run --implementation {params.implementation}"
        " --train {input.train} --test {input.test} --params {params.hyper:q}"
        " --seeds {params.seeds} --out results/{wildcards.dataset}/runs/{wildcards.run}"
        " --threads {threads} --device {params.device} > {log} 2>&1"


ruleorder: train_external > train
