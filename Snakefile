# Echo2ECG: echo studies and 12-lead ECGs -> an ECG encoder that knows cardiac morphology.
# The stages and their outputs are described in README.md ("Architecture").

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"


if config["demo"]["enabled"]:

    include: "rules/demo.smk"


include: "rules/data.smk"
include: "rules/embed.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        data_stage_outputs(),
        training_outputs(),
        evaluation_outputs(),
