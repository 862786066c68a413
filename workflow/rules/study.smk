# The study: paper-style tables and figures over all runs and seeds of a dataset.


rule table:
    input:
        metrics=lambda w: run_outputs(w.dataset, "metrics.json"),
        ranks=lambda w: run_outputs(w.dataset, "ranks.parquet"),
    output:
        md=report(
            "results/{dataset}/tables/{table}.md",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{dataset}",
        ),
        csv="results/{dataset}/tables/{table}.csv",
        tex="results/{dataset}/tables/{table}.tex",
    log:
        "results/logs/{dataset}/table_{table}.log",
    benchmark:
        "results/benchmarks/{dataset}/table_{table}.tsv"
    params:
        config=study_config_json(),
    wildcard_constraints:
        table="|".join(TABLES),
    shell:
        "python -m gru4rec_repro table --name {wildcards.table} --results results/{wildcards.dataset}"
        " --config {params.config:q} --dataset {wildcards.dataset}"
        " --out results/{wildcards.dataset}/tables > {log} 2>&1"


rule figure:
    input:
        metrics=lambda w: run_outputs(w.dataset, "metrics.json"),
        ranks=lambda w: run_outputs(w.dataset, "ranks.parquet"),
    output:
        report(
            "results/{dataset}/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/{dataset}/figure_{figure}.log",
    benchmark:
        "results/benchmarks/{dataset}/figure_{figure}.tsv"
    params:
        config=study_config_json(),
    wildcard_constraints:
        figure="|".join(FIGURES),
    shell:
        "python -m gru4rec_repro figure --name {wildcards.figure} --results results/{wildcards.dataset}"
        " --config {params.config:q} --dataset {wildcards.dataset} --out {output} > {log} 2>&1"
