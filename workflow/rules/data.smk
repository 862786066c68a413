# Data: get each dataset, make the official split, derive the dwell-time variants.


rule prepare_data:
    output:
        parquet=expand("results/{{dataset}}/data/{split}.parquet", split=SPLITS),
        tsv=expand("results/{{dataset}}/data/{split}.tsv", split=SPLITS),
        manifest="results/{dataset}/data/manifest.json",
    log:
        "results/logs/{dataset}/prepare_data.log",
    benchmark:
        "results/benchmarks/{dataset}/prepare_data.tsv"
    params:
        spec=lambda w: json.dumps(config["datasets"][w.dataset]),
        workdir=lambda w: f"results/{w.dataset}/raw",
    resources:
        mem_mb=8000,
    shell:
        "python -m gru4rec_repro prepare --dataset {wildcards.dataset} --spec {params.spec:q}"
        " --out results/{wildcards.dataset}/data --workdir {params.workdir} > {log} 2>&1"


rule dwell_variant:
    input:
        rules.prepare_data.output.manifest,
    output:
        parquet=expand("results/{{dataset}}/data/{{variant}}/{split}.parquet", split=SPLITS),
        manifest="results/{dataset}/data/{variant}/manifest.json",
    log:
        "results/logs/{dataset}/dwell_{variant}.log",
    benchmark:
        "results/benchmarks/{dataset}/dwell_{variant}.tsv"
    params:
        threshold=lambda w: w.variant.split("-")[0][len("dwell"):],
        apply_to=lambda w: "train" if w.variant.endswith("-train") else "train+test",
    shell:
        "python -m gru4rec_repro dwell --split results/{wildcards.dataset}/data"
        " --out results/{wildcards.dataset}/data/{wildcards.variant}"
        " --threshold {params.threshold} --apply-to {params.apply_to} > {log} 2>&1"
