# Audit: GRU4Rec implementations we did not write (implementations/external/<name>/),
# each trained in its own Python environment on the study's split and ranked under
# the same contract; the `audit` table compares them with the authors' code and ours.
# config/audit.yaml adds the panel to a study; without external runs nothing here runs.
# Included before study.smk, so that the tables see the panel. See docs/AUDIT.md.

import re
import sys

from gru4rec_repro import external
from gru4rec_repro.contract import EXTERNAL

# external.panel joins the study's runs; the authors' code only runs from a
# checkout the user points at (external.authors.checkout).
RUNS[:], _left_out = external.study_runs(config, RUNS)
if _left_out:
    print(f"audit: external.authors.checkout is not set; runs {_left_out} are left out "
          "(the audit table notes it)", file=sys.stderr)
EXTERNAL_RUNS = [r for r in RUNS if config["runs"][r]["implementation"] in EXTERNAL]
# Environments are built here (one folder per implementation and requirements hash).
ENV_CACHE = (config.get("external") or {}).get("cache") or "results/envs"


rule build_environment:
    input:
        # where the installed package finds it (also when the study runs in another directory)
        lambda w: external.EXTERNAL_DIR / w.implementation / "requirements.txt",
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
        hyper=lambda w: json.dumps(hyperparameters(w.run), sort_keys=True),
        seeds=" ".join(str(s) for s in SEEDS),
        device=STUDY["device"],
        cache=ENV_CACHE,
        options=external.workflow_options(config),
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
