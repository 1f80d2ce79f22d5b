# Helpers shared by the rules: config checking, manifests, shard plans, parameters.
# The logic lives in the echo2ecg package; these functions only connect it to the rules.

import functools
import os

from snakemake.exceptions import WorkflowError

from echo2ecg.config import (
    ConfigError,
    check_cohort_references,
    check_config,
    check_no_duplicate_keys,
    check_semantics,
)
from echo2ecg.data.manifest import ManifestError, load_echo_views, load_ecgs
from echo2ecg.report.provenance import code_digest
from echo2ecg.data.pseudonym import resolve_key
from echo2ecg.data.shard_plan import plan_ecg_shards, plan_echo_shards, shard_digest, shard_label

try:
    for configfile in workflow.configfiles:  # first: the loaded config has lost the duplicates
        check_no_duplicate_keys(configfile)
    check_config(config, workflow.source_path("schemas/config.schema.yaml"))
    check_cohort_references(config)
    check_semantics(config)
except ConfigError as error:
    raise WorkflowError(str(error))

try:
    PSEUDONYM_KEY = resolve_key(config["privacy"]["pseudonym_key"], demo=config["demo"]["enabled"])
except ValueError as error:
    raise WorkflowError(str(error))
COHORTS = config["cohorts"]
ECHO_COHORTS = [name for name, cohort in COHORTS.items() if "echo_views" in cohort]
TRAIN_COHORT = config["pairing"]["train_cohort"]
# Cohorts whose clips' burned-in ECGs are extracted (ecg_sources lists echo_trace).
TRACE_COHORTS = ECHO_COHORTS if "echo_trace" in config.get("ecg_sources", []) else []
TRAINING_ECG_SOURCE = config["pairing"].get("ecg_source", "ecg_files")
VARIANTS = list(config["variants"])
# Other models' ECG features given by the user: name → Parquet (evaluation.external_features).
EXTERNAL_FEATURES = config["evaluation"].get("external_features") or {}


wildcard_constraints:
    cohort="[A-Za-z0-9_-]+",
    shard=r"\d{4}",
    variant="[A-Za-z0-9_-]+",
    name="[A-Za-z0-9_-]+",


def demo_manifests():
    """The manifests the demo rule writes (empty when the demo is off)."""
    if not config["demo"]["enabled"]:
        return {}
    out = config["demo"]["out"]
    return {
        "internal_echo_views": f"{out}/internal/echo_views.csv",
        "internal_ecgs": f"{out}/internal/ecgs.csv",
        "internal_labels": f"{out}/internal/labels.csv",
        "external_ecgs": f"{out}/external/ecgs.csv",
        "external_labels": f"{out}/external/labels.csv",
        # what only the generator knows (each recording's planted noise), not an input
        "internal_ecg_truth": f"{out}/internal/ecg_truth.csv",
        "external_ecg_truth": f"{out}/external/ecg_truth.csv",
    }


def written_by_demo(path):
    return os.path.normpath(path) in {os.path.normpath(p) for p in demo_manifests().values()}


def manifest_path(cohort, table):
    """A cohort's manifest; waits for the demo checkpoint when the demo writes it."""
    path = COHORTS[cohort][table]
    if written_by_demo(path):
        checkpoints.demo_cohort.get()
    return path


def demo_dependency(table):
    """Input function: the demo manifest a shard job waits for (nothing for real cohorts,
    whose files are tracked through the shard's file states)."""

    def dependency(wildcards):
        path = COHORTS[wildcards.cohort][table]
        return [manifest_path(wildcards.cohort, table)] if written_by_demo(path) else []

    return dependency


def script_code(script):
    """Digest of the echo2ecg code a workflow script runs (its whole import closure), as
    a param: a rule reruns when, and only when, code it runs changes."""
    return code_digest(os.path.join(workflow.basedir, "workflow_scripts", f"{script}.py"))


def load_manifest(loader, cohort, table):
    """A cohort's manifest, a bad one stopping the run with the loader's one message."""
    try:
        return loader(manifest_path(cohort, table))
    except ManifestError as error:
        raise WorkflowError(str(error))


@functools.cache
def echo_plan(cohort):
    views = load_manifest(load_echo_views, cohort, "echo_views")
    return plan_echo_shards(
        views, COHORTS[cohort]["echo_shards"], PSEUDONYM_KEY, config["privacy"]["hash_paths"]
    )


@functools.cache
def ecg_plan(cohort):
    ecgs = load_manifest(load_ecgs, cohort, "ecgs")
    return plan_ecg_shards(
        ecgs, COHORTS[cohort]["ecg_shards"], PSEUDONYM_KEY, config["privacy"]["hash_paths"]
    )


def echo_shard_digest(wildcards):
    """The shard's rows as a digest: params carry no path or identifier (.snakemake/ keeps
    them), the job plans its rows again from the manifest."""
    return shard_digest(echo_plan(wildcards.cohort)[wildcards.shard])


def ecg_shard_digest(wildcards):
    return shard_digest(ecg_plan(wildcards.cohort)[wildcards.shard])


def shard_plan_settings(table):
    """What a shard job needs to plan its own rows: the manifest, the shard count, whether
    paths are hashed (the key comes from the config or the environment, never a param)."""

    def settings(wildcards):
        shards = "ecg_shards" if table == "ecgs" else "echo_shards"
        return {
            "table": table,
            "manifest": manifest_path(wildcards.cohort, table),
            "n_shards": COHORTS[wildcards.cohort][shards],
            "hash_paths": config["privacy"]["hash_paths"],
        }

    return settings


SHARD_DIRS = {
    "echo": "results/data/{cohort}/echo/shard_{shard}",
    "ecg": "results/data/{cohort}/ecg/shard_{shard}",
    "trace": "results/data/{cohort}/echo_trace/shard_{shard}",
    "embeddings": "results/embeddings/{cohort}/shard_{shard}",
}


def shard_paths(cohort, stage, name):
    """`name` (ledger.csv, ecg.zarr, ...) in every shard folder of a cohort's stage."""
    n_shards = COHORTS[cohort]["ecg_shards" if stage == "ecg" else "echo_shards"]
    return [
        f"{SHARD_DIRS[stage].format(cohort=cohort, shard=shard_label(i))}/{name}"
        for i in range(n_shards)
    ]


def shard_labels(cohort, stage):
    """The shard labels of a cohort's stage, in the order of `shard_paths`: a rule passes
    them beside its shard inputs, so the library never reads meaning out of a path."""
    n_shards = COHORTS[cohort]["ecg_shards" if stage == "ecg" else "echo_shards"]
    return [shard_label(i) for i in range(n_shards)]


def cohort_shard_labels(stage):
    """Params function: `shard_labels` of the job's cohort (none for a cohort without echo)."""

    def labels(wildcards):
        if stage != "ecg" and wildcards.cohort not in ECHO_COHORTS:
            return []
        return shard_labels(wildcards.cohort, stage)

    return labels


def ledger_keys():
    """(stage, cohort) of every ledger `ledger_summary` reads, in input order."""
    return (
        [["echo", cohort] for cohort in ECHO_COHORTS for _ in shard_labels(cohort, "echo")]
        + [["ecg", cohort] for cohort in COHORTS for _ in shard_labels(cohort, "ecg")]
        + [["echo_trace", c] for c in TRACE_COHORTS for _ in shard_labels(c, "trace")]
    )


def cohort_manifest(table):
    """Input function: a cohort's manifest file (`ecgs`, `labels`)."""
    return lambda wildcards: COHORTS[wildcards.cohort][table]


def echo_ledgers():
    return [p for cohort in ECHO_COHORTS for p in shard_paths(cohort, "echo", "ledger.csv")]


def ecg_ledgers():
    return [p for cohort in COHORTS for p in shard_paths(cohort, "ecg", "ledger.csv")]


def trace_ledgers():
    return [p for cohort in TRACE_COHORTS for p in shard_paths(cohort, "trace", "ledger.csv")]


def cohort_trace_ledgers(wildcards):
    if wildcards.cohort not in TRACE_COHORTS:
        return []
    return shard_paths(wildcards.cohort, "trace", "ledger.csv")


def cohort_ecg_ledgers(wildcards):
    return shard_paths(wildcards.cohort, "ecg", "ledger.csv")


def cohort_echo_ledgers(wildcards):
    if wildcards.cohort not in ECHO_COHORTS:
        return []
    return shard_paths(wildcards.cohort, "echo", "ledger.csv")


def cohort_ecg_stores(wildcards):
    return shard_paths(wildcards.cohort, "ecg", "ecg.zarr")


def cohort_embedding_stores(wildcards):
    if wildcards.cohort not in ECHO_COHORTS:
        return []
    return shard_paths(wildcards.cohort, "embeddings", "embeddings.zarr")


# Report categories, in the order a reader should open them.
FINDINGS = "1. Findings"
RESULTS = "2. Results"
TRAINING = "3. Training"
DATA = "4. Data"


def cohort_splits(wildcards):
    """The cohort's split fractions: its own `splits`, else `pairing.splits`."""
    return COHORTS[wildcards.cohort].get("splits", config["pairing"]["splits"])


def pretrain_priority(wildcards):
    """Longest training first, so that shorter jobs fill the cores while it runs: a
    single-view variant that samples every (ECG, view) row trains on about as many samples
    per epoch as there are views (2), a multi-view variant on one per pair (1), and a
    variant that is not trained only writes its initialisation (0)."""
    variant = config["variants"][wildcards.variant]
    if not variant.get("train", True):
        return 0
    every_view = config["train"]["single_view_sampling"] == "every_view"
    return 2 if variant["pooling"] == "single" and every_view else 1


def evaluated_checkpoint():
    """The checkpoint evaluation reads (`evaluation.checkpoint`: last or best)."""
    return f"results/models/{{variant}}/{config['evaluation']['checkpoint']}.pt"


def feature_models(external=True):
    """The models a table compares: every variant, then (``external``) every model whose
    features the user gave; retrieval has no joint space for the latter."""
    return VARIANTS + (list(EXTERNAL_FEATURES) if external else [])


def feature_keys(cohorts, external=True):
    """(model, cohort) of every feature file an evaluation rule reads, in input order."""
    return [(model, cohort) for model in feature_models(external) for cohort in cohorts]


def feature_file(model, cohort):
    if model in EXTERNAL_FEATURES and model not in config["variants"]:
        return f"results/features/external/{model}/{cohort}.npz"
    return f"results/features/{model}/{cohort}.npz"


def feature_files(cohorts, external=True):
    return [feature_file(model, cohort) for model, cohort in feature_keys(cohorts, external)]


def external_features_table(wildcards):
    return EXTERNAL_FEATURES[wildcards.name]


def evaluation_settings(*keys):
    """The `evaluation` config keys a table depends on (its params and its provenance)."""
    return {key: config["evaluation"][key] for key in keys}


def encoders_pretrained():
    """Whether each encoder started from given weights; every report carries this."""
    return {
        "echo_encoder": bool(config["echo_encoder"]["weights"]),
        "ecg_encoder": bool(config["ecg_encoder"]["weights"]),
    }


def train_ecg_stores():
    return shard_paths(TRAIN_COHORT, "ecg", "ecg.zarr")


def training_pairs():
    """The pairs tables that train (pairing.ecg_source): the ECG files' and/or the traces'."""
    files = [f"results/pairs/{TRAIN_COHORT}/pairs.csv"]
    traces = [f"results/pairs/{TRAIN_COHORT}/trace_pairs.csv"]
    return {"ecg_files": files, "echo_trace": traces, "both": files + traces}[TRAINING_ECG_SOURCE]


def train_trace_stores():
    if TRAINING_ECG_SOURCE == "ecg_files":
        return []
    return shard_paths(TRAIN_COHORT, "trace", "ecg.zarr")


def train_trace_shards():
    return [] if TRAINING_ECG_SOURCE == "ecg_files" else shard_labels(TRAIN_COHORT, "trace")


def train_echo_ledgers():
    return shard_paths(TRAIN_COHORT, "echo", "ledger.csv")


def train_embedding_stores():
    return shard_paths(TRAIN_COHORT, "embeddings", "embeddings.zarr")


def echo_encoder_weights():
    """The EchoPrime weights file as an input (a changed file reruns embedding), or none."""
    weights = config["echo_encoder"]["weights"]
    return [weights] if weights else []


def echo_init_seed():
    """The random init's seed, a parameter of embedding only without weights (with weights
    it changes nothing, so it must not rerun anything)."""
    return None if config["echo_encoder"]["weights"] else config["echo_encoder"]["init_seed"]


def ecg_encoder_weights():
    weights = config["ecg_encoder"]["weights"]
    return [weights] if weights else []


def report_table(name):
    """A report table's CSV and the HTML rendering the report shows (both requested, so
    that a rule gaining either output reruns)."""
    return [f"results/tables/{name}.csv", f"results/tables/{name}.html"]


def data_stage_outputs():
    return echo_ledgers() + ecg_ledgers() + trace_ledgers() + report_table("ledger_summary")


def probabilistic_variants():
    """The variants trained with the probabilistic objective (their uncertainty is tabled)."""
    return [
        name
        for name, spec in config["variants"].items()
        if spec.get("objective") == "probabilistic" and spec.get("train", True)
    ]


def uncertainty_feature_keys():
    cohorts = config["evaluation"]["lvef_cohorts"]
    return [(variant, cohort) for variant in probabilistic_variants() for cohort in cohorts]


def evaluation_outputs():
    names = ["lvef_knn", "shd_scaling", "retrieval", "ablation", "findings"]
    if probabilistic_variants():
        names.append("uncertainty")
        if config["demo"]["enabled"]:
            names.append("uncertainty_noise")
    return [path for name in names for path in report_table(name)]


def training_outputs():
    return report_table("cohort_splits") + [
        f"results/models/{variant}/{name}.pt" for variant in VARIANTS for name in ("best", "last")
    ]
