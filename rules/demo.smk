# The embedded demo cohort: a synthetic hospital in real file formats.
# A checkpoint, because which files each shard reads is known only once it has run.


checkpoint demo_cohort:
    output:
        **demo_manifests(),
    params:
        # the folder holding every manifest: the demo's files go below it, beside them
        out=lambda wildcards, output: os.path.commonpath(list(output)),
        seed=config["demo"]["seed"],
        scale=config["demo"]["scale"],
        code=script_code("demo_cohort"),
    log:
        "logs/demo_cohort/demo_cohort.log",
    benchmark:
        "benchmarks/demo_cohort/demo_cohort.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/demo_cohort.py"
