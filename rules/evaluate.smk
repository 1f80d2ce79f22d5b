# Downstream evaluation: features per variant and cohort, then the paper's tables, each with
# its per-row evidence, and the findings: the paper's claims checked on this cohort.


rule features:
    input:
        checkpoint=evaluated_checkpoint(),
        pairs="results/pairs/{cohort}/pairs.csv",
        ecg_stores=cohort_ecg_stores,
        echo_ledgers=cohort_echo_ledgers,
        embeddings=cohort_embedding_stores,
    output:
        features="results/features/{variant}/{cohort}.npz",
    params:
        ecg_shards=cohort_shard_labels("ecg"),
        echo_shards=cohort_shard_labels("echo"),
        max_views=config["train"]["max_views"],
        kind=config["evaluation"]["features"],
        n_samples=config["evaluation"]["n_samples"],
        code=script_code("features"),
    log:
        "logs/features/{variant}/{cohort}.log",
    benchmark:
        "benchmarks/features/{variant}/{cohort}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/features.py"


rule external_features:
    input:
        table=external_features_table,
        pairs="results/pairs/{cohort}/pairs.csv",
    output:
        features="results/features/external/{name}/{cohort}.npz",
    params:
        code=script_code("external_features"),
    log:
        "logs/external_features/{name}/{cohort}.log",
    benchmark:
        "benchmarks/external_features/{name}/{cohort}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/external_features.py"


rule lvef_knn:
    input:
        features=feature_files(config["evaluation"]["lvef_cohorts"]),
        pairs=expand(
            "results/pairs/{cohort}/pairs.csv", cohort=config["evaluation"]["lvef_cohorts"]
        ),
    output:
        table="results/tables/lvef_knn.csv",
        markdown="results/tables/lvef_knn.md",
        html=report(
            "results/tables/lvef_knn.html",
            caption="report/lvef_knn.rst",
            category=RESULTS,
            labels={"result": "LVEF kNN AUROC", "kind": "table"},
        ),
        provenance="results/tables/lvef_knn.provenance.json",
        evidence="results/evidence/lvef_knn_scores.csv",
    params:
        feature_keys=feature_keys(config["evaluation"]["lvef_cohorts"]),
        cohorts=config["evaluation"]["lvef_cohorts"],
        settings=evaluation_settings(
            "knn_k",
            "balance_lvef_train",
            "bootstrap_resamples",
            "seed",
            "lvef_cohorts",
            "baseline",
            "features",
            "n_samples",
            "checkpoint",
        ),
        pretrained=encoders_pretrained(),
        code=script_code("lvef_knn"),
    log:
        "logs/lvef_knn/lvef_knn.log",
    benchmark:
        "benchmarks/lvef_knn/lvef_knn.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/lvef_knn.py"


rule shd_scaling:
    input:
        features=feature_files([config["evaluation"]["shd_cohort"]]),
        pairs=f"results/pairs/{config['evaluation']['shd_cohort']}/pairs.csv",
    output:
        table="results/tables/shd_scaling.csv",
        markdown="results/tables/shd_scaling.md",
        html=report(
            "results/tables/shd_scaling.html",
            caption="report/shd_scaling.rst",
            category=RESULTS,
            labels={"result": "SHD data scaling", "kind": "table"},
        ),
        provenance="results/tables/shd_scaling.provenance.json",
        plot=report(
            "results/tables/shd_scaling.png",
            caption="report/shd_scaling_plot.rst",
            category=RESULTS,
            labels={"result": "SHD AUROC against training fraction", "kind": "figure"},
        ),
        evidence="results/evidence/shd_scaling_scores.csv",
    params:
        variants=feature_models(),
        settings=evaluation_settings(
            "knn_k",
            "bootstrap_resamples",
            "seed",
            "shd_cohort",
            "shd_fractions",
            "shd_seeds",
            "features",
            "n_samples",
            "checkpoint",
        ),
        pretrained=encoders_pretrained(),
        code=script_code("shd_scaling"),
    log:
        "logs/shd_scaling/shd_scaling.log",
    benchmark:
        "benchmarks/shd_scaling/shd_scaling.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/shd_scaling.py"


rule retrieval:
    input:
        features=feature_files([TRAIN_COHORT], external=False),
        pairs=f"results/pairs/{TRAIN_COHORT}/pairs.csv",
    output:
        table="results/tables/retrieval.csv",
        markdown="results/tables/retrieval.md",
        html=report(
            "results/tables/retrieval.html",
            caption="report/retrieval.rst",
            category=RESULTS,
            labels={"result": "ECG to echo retrieval", "kind": "table"},
        ),
        provenance="results/tables/retrieval.provenance.json",
        evidence="results/evidence/retrieval_queries.csv",
    params:
        variants=VARIANTS,
        settings=evaluation_settings(
            "retrieval_tolerance_sd", "bootstrap_resamples", "seed", "baseline", "checkpoint"
        ),
        pretrained=encoders_pretrained(),
        code=script_code("retrieval"),
    log:
        "logs/retrieval/retrieval.log",
    benchmark:
        "benchmarks/retrieval/retrieval.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/retrieval.py"


rule ablation:
    input:
        lvef="results/tables/lvef_knn.csv",
        shd="results/tables/shd_scaling.csv",
    output:
        table="results/tables/ablation.csv",
        markdown="results/tables/ablation.md",
        html=report(
            "results/tables/ablation.html",
            caption="report/ablation.rst",
            category=RESULTS,
            labels={"result": "ablation", "kind": "table"},
        ),
        provenance="results/tables/ablation.provenance.json",
    params:
        settings={
            "internal_cohort": TRAIN_COHORT,
            "shd_fraction": config["evaluation"]["ablation_shd_fraction"],
            "variants": config["variants"],
        },
        pretrained=encoders_pretrained(),
        code=script_code("ablation"),
    log:
        "logs/ablation/ablation.log",
    benchmark:
        "benchmarks/ablation/ablation.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/ablation.py"


rule findings:
    input:
        lvef="results/evidence/lvef_knn_scores.csv",
        shd="results/evidence/shd_scaling_scores.csv",
        retrieval="results/evidence/retrieval_queries.csv",
    output:
        table="results/tables/findings.csv",
        markdown="results/tables/findings.md",
        html=report(
            "results/tables/findings.html",
            caption="report/findings.rst",
            category=FINDINGS,
            labels={"result": "the paper's claims on this cohort", "kind": "table"},
        ),
        provenance="results/tables/findings.provenance.json",
    params:
        settings={
            **evaluation_settings(
                "lvef_cohorts",
                "shd_cohort",
                "ablation_shd_fraction",
                "knn_k",
                "bootstrap_resamples",
                "seed",
            ),
            "retrieval_cohort": TRAIN_COHORT,
            "variants": config["variants"],
            "external_features": list(EXTERNAL_FEATURES),
        },
        pretrained=encoders_pretrained(),
        code=script_code("findings"),
    log:
        "logs/findings/findings.log",
    benchmark:
        "benchmarks/findings/findings.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/findings.py"


rule uncertainty:
    input:
        lvef="results/evidence/lvef_knn_scores.csv",
        features=[f"results/features/{v}/{c}.npz" for v, c in uncertainty_feature_keys()],
    output:
        table="results/tables/uncertainty.csv",
        markdown="results/tables/uncertainty.md",
        html=report(
            "results/tables/uncertainty.html",
            caption="report/uncertainty.rst",
            category=RESULTS,
            labels={"result": "LVEF by ECG uncertainty", "kind": "table"},
        ),
        provenance="results/tables/uncertainty.provenance.json",
    params:
        feature_keys=uncertainty_feature_keys(),
        settings=evaluation_settings("bootstrap_resamples", "seed", "knn_k", "lvef_cohorts"),
        pretrained=encoders_pretrained(),
        code=script_code("uncertainty"),
    log:
        "logs/uncertainty/uncertainty.log",
    benchmark:
        "benchmarks/uncertainty/uncertainty.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/uncertainty.py"
