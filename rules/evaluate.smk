# Downstream evaluation: features per variant and cohort, then the paper's tables.


rule features:
    input:
        checkpoint="results/models/{variant}/best.pt",
        pairs="results/pairs/{cohort}/pairs.csv",
        ecg_stores=cohort_ecg_stores,
        echo_ledgers=cohort_echo_ledgers,
        embeddings=cohort_embedding_stores,
    output:
        features="results/features/{variant}/{cohort}.npz",
    params:
        max_views=config["train"]["max_views"],
        code=module_digest("features", "train", "pretrain"),
    log:
        "logs/features/{variant}/{cohort}.log",
    benchmark:
        "benchmarks/features/{variant}/{cohort}.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/features.py"


rule lvef_knn:
    input:
        features=expand("results/features/{variant}/{cohort}.npz", variant=VARIANTS,
                        cohort=config["evaluation"]["lvef_cohorts"]),
        pairs=expand("results/pairs/{cohort}/pairs.csv", cohort=config["evaluation"]["lvef_cohorts"]),
    output:
        table=report("results/tables/lvef_knn.csv", category="Results",
                     labels={"table": "LVEF kNN AUROC"}),
        markdown="results/tables/lvef_knn.md",
        provenance="results/tables/lvef_knn.provenance.json",
    params:
        settings=evaluation_settings("knn_k", "balance_lvef_train", "bootstrap_resamples", "seed",
                                     "lvef_cohorts"),
        pretrained=encoders_pretrained(),
        code=module_digest("downstream", "evaluate", "provenance", "tables"),
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
        features=expand("results/features/{variant}/{cohort}.npz", variant=VARIANTS,
                        cohort=config["evaluation"]["shd_cohort"]),
        pairs=f"results/pairs/{config['evaluation']['shd_cohort']}/pairs.csv",
    output:
        table=report("results/tables/shd_scaling.csv", category="Results",
                     labels={"table": "SHD data scaling"}),
        markdown="results/tables/shd_scaling.md",
        provenance="results/tables/shd_scaling.provenance.json",
        plot=report("results/tables/shd_scaling.png", category="Results",
                    labels={"figure": "SHD AUROC against training fraction"}),
    params:
        settings=evaluation_settings("knn_k", "bootstrap_resamples", "seed", "shd_cohort",
                                     "shd_fractions", "shd_seeds"),
        pretrained=encoders_pretrained(),
        code=module_digest("downstream", "evaluate", "provenance", "tables", "plots"),
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
        features=expand("results/features/{variant}/{cohort}.npz", variant=VARIANTS,
                        cohort=TRAIN_COHORT),
        pairs=f"results/pairs/{TRAIN_COHORT}/pairs.csv",
    output:
        table=report("results/tables/retrieval.csv", category="Results",
                     labels={"table": "ECG to echo retrieval"}),
        markdown="results/tables/retrieval.md",
        provenance="results/tables/retrieval.provenance.json",
    params:
        settings=evaluation_settings("retrieval_tolerance_sd"),
        pretrained=encoders_pretrained(),
        code=module_digest("downstream", "evaluate", "provenance", "tables"),
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
        table=report("results/tables/ablation.csv", category="Results",
                     labels={"table": "ablation"}),
        markdown="results/tables/ablation.md",
        provenance="results/tables/ablation.provenance.json",
    params:
        settings={"internal_cohort": TRAIN_COHORT, "shd_fraction": 0.01},
        pretrained=encoders_pretrained(),
        code=module_digest("downstream", "provenance", "tables"),
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
