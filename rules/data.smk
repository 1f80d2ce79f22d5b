# The data stage: DICOM echo views -> clip shards, ECG files -> signal shards, the ECG
# burned into each view -> lead-II signal shards (with echo_trace in ecg_sources), ledgers.


rule extract_echo:
    input:
        manifest=demo_dependency("echo_views"),
    output:
        store=directory(f"{SHARD_DIRS['echo']}/clips.zarr"),
        ledger=f"{SHARD_DIRS['echo']}/ledger.csv",
    params:
        rows=echo_shard_digest,
        plan=shard_plan_settings("echo_views"),
        recipe=config["echo"],
        time_limit_s=config["file_time_limit_s"]["echo"],
        code=script_code("data_shard"),
    log:
        "logs/extract_echo/{cohort}/shard_{shard}.log",
    benchmark:
        "benchmarks/extract_echo/{cohort}/shard_{shard}.tsv"
    # first of the data jobs: embedding, the longest stage, waits for its shard's clips
    priority: 4
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/data_shard.py"


rule prep_ecg:
    input:
        manifest=demo_dependency("ecgs"),
    output:
        store=directory(f"{SHARD_DIRS['ecg']}/ecg.zarr"),
        ledger=f"{SHARD_DIRS['ecg']}/ledger.csv",
    params:
        rows=ecg_shard_digest,
        plan=shard_plan_settings("ecgs"),
        recipe=config["ecg"],
        time_limit_s=config["file_time_limit_s"]["ecg"],
        code=script_code("data_shard"),
    log:
        "logs/prep_ecg/{cohort}/shard_{shard}.log",
    benchmark:
        "benchmarks/prep_ecg/{cohort}/shard_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/data_shard.py"


rule extract_trace:
    input:
        manifest=demo_dependency("echo_views"),
    output:
        store=directory(f"{SHARD_DIRS['trace']}/ecg.zarr"),
        ledger=f"{SHARD_DIRS['trace']}/ledger.csv",
    params:
        rows=echo_shard_digest,
        plan=shard_plan_settings("echo_views"),
        recipe=config.get("echo_trace"),
        ecg_recipe=config["ecg"],
        time_limit_s=config["file_time_limit_s"]["echo"],
        code=script_code("trace_shard"),
    log:
        "logs/extract_trace/{cohort}/shard_{shard}.log",
    benchmark:
        "benchmarks/extract_trace/{cohort}/shard_{shard}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/trace_shard.py"


rule ledger_summary:
    input:
        echo=echo_ledgers(),
        ecg=ecg_ledgers(),
        trace=trace_ledgers(),
    output:
        table="results/tables/ledger_summary.csv",
        markdown="results/tables/ledger_summary.md",
        html=report(
            "results/tables/ledger_summary.html",
            caption="report/ledger_summary.rst",
            category=DATA,
            labels={"result": "ledger summary", "kind": "table"},
        ),
    params:
        ledgers=ledger_keys(),
        code=script_code("ledger_summary"),
    log:
        "logs/ledger_summary/ledger_summary.log",
    benchmark:
        "benchmarks/ledger_summary/ledger_summary.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/ledger_summary.py"
