"""demo_cohort: write the synthetic demo cohort (DICOM, WFDB, ...) and its manifests."""

from pathlib import Path

from echo2ecg.runlog import log_to
from echo2ecg.synth.cohort import demo_specs, generate_demo

with log_to(snakemake.log[0]):
    internal, external = demo_specs(seed=snakemake.params.seed, scale=snakemake.params.scale)
    demo_root = Path(snakemake.output.internal_views).parents[1]  # {out}/internal/echo_views.csv
    generate_demo(demo_root, internal, external, workers=snakemake.threads)
