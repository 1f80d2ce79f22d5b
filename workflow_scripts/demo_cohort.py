"""demo_cohort: write the synthetic demo cohort (DICOM, WFDB, ...) and its manifests."""

from echo2ecg.runlog import log_to
from echo2ecg.synth.cohort import demo_specs, generate_demo

with log_to(snakemake.log[0]):
    internal, external = demo_specs(seed=snakemake.params.seed, scale=snakemake.params.scale)
    generate_demo(
        snakemake.params.out,
        internal,
        external,
        workers=snakemake.threads,
        manifests=dict(snakemake.output.items()),
    )
