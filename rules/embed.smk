# The frozen echo encoder, run once per view: clip shards -> 512-d view embeddings.


rule embed_echo:
    input:
        clips=rules.extract_echo.output.store,
        weights=echo_encoder_weights(),
    output:
        embeddings=directory(f"{SHARD_DIRS['embeddings']}/embeddings.zarr"),
    params:
        batch_size=config["echo_encoder"]["batch_size"],
        workers=config["echo_encoder"]["loader_workers"],
        precision=config["echo_encoder"]["precision"],
        cpu_threads=config["echo_encoder"]["cpu_threads"],
        init_seed=echo_init_seed(),
        code=script_code("embed_echo"),
    log:
        "logs/embed_echo/{cohort}/shard_{shard}.log",
    benchmark:
        "benchmarks/embed_echo/{cohort}/shard_{shard}.tsv"
    # ahead of ECG preparation, which fills the cores around it
    priority: 3
    threads: config["echo_encoder"]["cpu_threads"]
    resources:
        gpu=1,
        mem_mb=6000,
        runtime=240,
    conda:
        "../envs/pipeline.yaml"
    script:
        "../workflow_scripts/embed_echo.py"
