# The GRU4Rec reproducibility study. `snakemake --cores all` runs it all:
# data -> split -> implementations -> rank records -> metrics -> tables / figures.
# Stages live in workflow/rules/; the code they call lives in gru4rec_repro/ and
# implementations/. See README.md.

configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/audit.smk"  # before study.smk: it may add the audit panel to the study's runs
include: "workflow/rules/study.smk"


rule all:
    input:
        all_targets(),
    default_target: True
