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


rule uncertainty_noise:
    input:
        truth=expand(
            "{out}/{cohort}/ecg_truth.csv",
            out=config["demo"]["out"],
            cohort=config["evaluation"]["lvef_cohorts"],
        ),
        pairs=expand(
            "results/pairs/{cohort}/pairs.csv", cohort=config["evaluation"]["lvef_cohorts"]
        ),
        features=[f"results/features/{v}/{c}.npz" for v, c in uncertainty_feature_keys()],
    output:
        table="results/tables/uncertainty_noise.csv",
        markdown="results/tables/uncertainty_noise.md",
        html=report(
            "results/tables/uncertainty_noise.html",
            caption="report/uncertainty_noise.rst",
            category=RESULTS,
            labels={"result": "ECG uncertainty against planted noise", "kind": "table"},
        ),
        provenance="results/tables/uncertainty_noise.provenance.json",
    params:
        feature_keys=uncertainty_feature_keys(),
        settings=evaluation_settings("bootstrap_resamples", "seed", "lvef_cohorts"),
        pretrained=encoders_pretrained(),
        code=script_code("uncertainty_noise"),
    log:
        "logs/uncertainty_noise/uncertainty_noise.log",
    benchmark:
        "benchmarks/uncertainty_noise/uncertainty_noise.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/uncertainty_noise.py"
