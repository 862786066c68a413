# Models: one job per (dataset, run) trains every seed of the run in one process
# and writes, per seed, the rank record and its metrics (computed from the rank
# record by the one shared function, gru4rec_repro.run.write_metrics).
#
# Why seeds share a job: a training job pays Python's start, its framework's
# import (TensorFlow: about 3.5 CPU-seconds, PyTorch: 1.7) and the data reading
# before its first step; on the default data one seed trains in seconds, so per
# seed these costs were as large as the training itself. One job per run pays
# them once for all seeds. Each seed keeps its own folder
# results/<dataset>/runs/<run>/seed<s>/ and its per-epoch checkpoint: a job run
# again after a crash (or a cluster's time limit) retrains no finished epoch of
# any seed; a seed whose training had finished only ranks the test set again
# (Snakemake deletes a failed job's declared outputs, the checkpoints survive).
# Deterministic baselines (POP, S-POP, Item-KNN) run once, with the first seed.


# GPU jobs per GPU (study.jobs_per_gpu): the run command's GPU slots read it (gru4rec_repro/gpuslot.py).
os.environ["GRU4REC_JOBS_PER_GPU"] = str(STUDY["jobs_per_gpu"])


rule train:
    input:
        unpack(run_splits),
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
        seeds=lambda w: " ".join(str(s) for s in seeds_of(w.run)),
        device=STUDY["device"],
    wildcard_constraints:
        run=run_names(deterministic=False),
    threads: lambda w: STUDY["threads"] if is_neural(w.run) else 1
    resources:
        gpu=lambda w: STUDY["gpu_per_job"] if is_neural(w.run) else 0,
        mem_mb=lambda w: STUDY["mem_mb"],
        runtime=lambda w: STUDY["runtime"] * len(seeds_of(w.run)),
    shell:
        "python -m gru4rec_repro run --implementation {params.implementation}"
        " --train {input.train} --test {input.test} --params {params.hyper:q}"
        " --seeds {params.seeds} --out results/{wildcards.dataset}/runs/{wildcards.run}"
        " --threads {threads} --device {params.device} > {log} 2>&1"


use rule train as train_once with:
    output:
        ranks=f"results/{{dataset}}/runs/{{run}}/seed{SEEDS[0]}/ranks.parquet",
        metrics=f"results/{{dataset}}/runs/{{run}}/seed{SEEDS[0]}/metrics.json",
    wildcard_constraints:
        run=run_names(deterministic=True),
