"""embed_echo: one clip shard -> 512-d view embeddings with the frozen MViTv2-S."""

import torch

from echo2ecg.embed.devices import choose_device
from echo2ecg.embed.views import embed_clip_store
from echo2ecg.models import EchoEncoderOrigin, build_echo_encoder
from echo2ecg.runlog import log_to

# The configured count, not the granted one: results must not depend on --cores.
torch.set_num_threads(snakemake.params.cpu_threads)

with log_to(snakemake.log[0]) as log:
    weights = snakemake.input.weights[0] if snakemake.input.weights else None
    seed = snakemake.params.init_seed  # None when weights are given: the init is overwritten
    origin = EchoEncoderOrigin(weights, init_seed=0 if seed is None else seed)
    encoder = build_echo_encoder(origin.weights, origin.init_seed)
    with choose_device() as lease:
        log.info("embedding on %s", lease.device)
        embed_clip_store(
            snakemake.input.clips,
            snakemake.output.embeddings,
            encoder,
            origin,
            device=lease.device,
            batch_size=snakemake.params.batch_size,
            num_workers=snakemake.params.workers,
            precision=snakemake.params.precision,
        )
