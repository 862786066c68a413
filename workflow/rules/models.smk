# Models: every run (baseline or GRU4Rec, any framework) trains and writes a rank
# record; ONE rule turns every rank record into metrics.


rule run_model:
    input:
        unpack(run_splits),
    output:
        ranks="results/{dataset}/runs/{run}/seed{seed}/ranks.parquet",
    log:
        "results/logs/{dataset}/runs/{run}/seed{seed}.log",
    benchmark:
        "results/benchmarks/{dataset}/runs/{run}/seed{seed}.tsv"
    params:
        implementation=lambda w: config["runs"][w.run]["implementation"],
        hyper=lambda w: json.dumps(hyperparameters(w.run), sort_keys=True),
        device=STUDY["device"],
        outdir=lambda w, output: os.path.dirname(output.ranks),
    threads: lambda w: STUDY["threads"] if is_neural(w.run) else 1
    resources:
        gpu=lambda w: STUDY["gpu_per_job"] if is_neural(w.run) else 0,
        mem_mb=lambda w: STUDY["mem_mb"],
        runtime=lambda w: STUDY["runtime"],
    shell:
        "python -m gru4rec_repro run --implementation {params.implementation}"
        " --train {input.train} --test {input.test} --params {params.hyper:q}"
        " --seed {wildcards.seed} --out {params.outdir} --threads {threads}"
        " --device {params.device} --no-metrics > {log} 2>&1"


# A second of work: run inside Snakemake's own process instead of a new Python.
localrules:
    metrics,


rule metrics:
    input:
        rules.run_model.output.ranks,
    output:
        "results/{dataset}/runs/{run}/seed{seed}/metrics.json",
    log:
        "results/logs/{dataset}/runs/{run}/seed{seed}.metrics.log",
    run:
        write_metrics(input[0], output[0], log_path=log[0])
