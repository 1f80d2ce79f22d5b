"""One model variant's pretraining, from the pipeline's stores to its checkpoints.

Reads only cached artefacts: the pairs table, the ECG shards and the view-embedding
shards. The echo encoder is never run here.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr

from echo2ecg.data.ecg_formats import LEADS
from echo2ecg.data.shard_plan import shard_label
from echo2ecg.data.store import open_rows
from echo2ecg.models import ECGEncoder, Echo2ECG, build_echo2ecg, load_otis_checkpoint
from echo2ecg.report.plots import plot_history
from echo2ecg.train.loop import HISTORY_COLUMNS, TrainOutputs, save_checkpoint, train, write_history
from echo2ecg.train.pair_data import PairData
from echo2ecg.train.settings import TrainSettings

log = logging.getLogger(__name__)


def read_rows(stores: dict[str, str], name: str, shards: pd.Series, rows: pd.Series) -> np.ndarray:
    """Rows of array ``name`` gathered across shard stores, in the order given."""
    out = None
    for shard, index in (
        pd.DataFrame({"shard": shards.to_numpy(), "row": rows.to_numpy()})
        .groupby("shard")
        .groups.items()
    ):
        array = open_rows(stores[shard], name)
        wanted = rows.to_numpy()[np.asarray(index)].astype(int)
        values = array.get_orthogonal_selection((wanted,) + (slice(None),) * (array.ndim - 1))
        if out is None:
            out = np.empty((len(rows), *array.shape[1:]), array.dtype)
        out[np.asarray(index)] = values
    return out if out is not None else np.empty((0,), np.float32)


def paired_ecg_signals(
    pairs: pd.DataFrame, ecg_stores: dict[str, str]
) -> tuple[pd.Series, np.ndarray]:
    """The distinct ECGs of ``pairs`` (pseudonyms, in order of appearance) and their
    preprocessed signals, (N, 12, T) float32, read from the ECG shards."""
    ecgs = pairs.drop_duplicates("ecg")[["ecg", "ecg_shard", "ecg_row"]].reset_index(drop=True)
    shards = ecgs["ecg_shard"].map(lambda shard: shard_label(int(shard)))
    signals = read_rows(ecg_stores, "signals", shards, ecgs["ecg_row"])
    return ecgs["ecg"], signals


def store_leads(store: str | Path) -> tuple[str, ...]:
    """The leads a signal store holds (its ``leads`` attribute; absent: all 12)."""
    return tuple(zarr.open_group(store, mode="r").attrs.get("leads", LEADS))


def paired_ecgs(
    pairs: pd.DataFrame, stores: dict[str, dict[str, str]]
) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ECGs of ``pairs`` from every ECG source they name (``ecg_source``
    column, ecg_files when absent): pseudonyms in order of appearance, signals
    (N, 12, T) float32 zero-padded to the longest store's T, recorded leads (N, 12) bool
    and recorded samples (N,) int64, from ``stores``: source → shard label → store."""
    if "ecg_source" not in pairs:
        pairs = pairs.assign(ecg_source="ecg_files")
    ecgs = pairs.drop_duplicates("ecg").reset_index(drop=True)
    parts = []
    for source, part in ecgs.groupby("ecg_source", sort=False):
        shards = part["ecg_shard"].map(lambda shard: shard_label(int(shard)))
        signals = read_rows(stores[source], "signals", shards, part["ecg_row"])
        leads = {store_leads(stores[source][shard]) for shard in shards.unique()}
        if len(leads) != 1:
            raise ValueError(f"the {source} stores hold different leads: {sorted(leads)}")
        parts.append((part.index.to_numpy(), signals, np.isin(LEADS, list(leads.pop()))))
    longest = max((signals.shape[-1] for _, signals, _ in parts), default=0)
    out = np.zeros((len(ecgs), len(LEADS), longest), np.float32)
    masks = np.ones((len(ecgs), len(LEADS)), bool)
    lengths = np.full(len(ecgs), longest, np.int64)
    for index, signals, recorded in parts:
        out[index, :, : signals.shape[-1]] = signals
        masks[index] = recorded
        lengths[index] = signals.shape[-1]
    return ecgs["ecg"], out, masks, lengths


def study_view_embeddings(
    studies, echo_ledger: pd.DataFrame, embedding_stores: dict[str, str], max_views: int = 128
) -> list[np.ndarray]:
    """Each study's cached view embeddings, (V, 512) float32, the first ``max_views`` in
    ledger order; ``studies`` must each have at least one ``ok`` view in the ledger."""
    views = echo_ledger[(echo_ledger["status"] == "ok") & echo_ledger["study"].isin(set(studies))]
    embeddings = read_rows(embedding_stores, "embeddings", views["shard"], views["row"])
    positions = views.reset_index(drop=True).groupby("study").indices
    return [embeddings[positions[s][:max_views]] for s in studies]


def load_pair_data(
    pairs: pd.DataFrame,
    split: str,
    ecg_stores: dict[str, str],
    echo_ledger: pd.DataFrame,
    embedding_stores: dict[str, str],
    max_views: int = 128,
    trace_stores: dict[str, str] | None = None,
) -> PairData:
    """The ``split``'s pairs whose study has view embeddings, as in-memory training data.

    ECGs: (N_ecg, 12, T) float32 from the ECG shards (``ecg_stores``, shard label → store)
    and, for pairs whose ``ecg_source`` is echo_trace, the trace shards (``trace_stores``),
    with their recorded leads and lengths; studies: each study's view
    embeddings (V, 512) float32 from the embedding shards, at most ``max_views`` kept
    (the first in ledger order); pairs: (P, 2) int64 (ECG index, study index); each
    study's patient, and which pairs are a clip's own trace (synchronised).
    """
    part = pairs[(pairs["split"] == split) & (pairs["n_views"] > 0)]  # report-only studies
    stores = {"ecg_files": ecg_stores, "echo_trace": trace_stores or {}}
    ecg_ids, ecg_signals, lead_masks, lengths = paired_ecgs(part, stores)
    studies = part["study"].drop_duplicates().reset_index(drop=True)
    study_views = study_view_embeddings(studies, echo_ledger, embedding_stores, max_views)
    ecg_index = pd.Series(range(len(ecg_ids)), index=ecg_ids)
    study_index = pd.Series(range(len(studies)), index=studies)
    pair_array = np.stack(
        [ecg_index[part["ecg"]].to_numpy(), study_index[part["study"]].to_numpy()], axis=1
    ).astype(np.int64)
    study_patient = part.drop_duplicates("study").set_index("study")["patient"]
    patient_codes = pd.factorize(study_patient[studies].to_numpy())[0].astype(np.int64)
    synchronised = part.get("ecg_source", pd.Series("ecg_files", index=part.index))
    return PairData(
        ecg_signals,
        study_views,
        pair_array,
        lead_masks,
        lengths,
        study_patients=patient_codes,
        synchronised=(synchronised == "echo_trace").to_numpy(),
    )


def build_model(
    encoder: dict,
    pooling: str,
    aggregator: dict | None = None,
    objective: str = "clip",
    centre_means: bool = True,
) -> Echo2ECG:
    """The model of ``objective`` (:func:`~echo2ecg.models.build_echo2ecg`) from the
    config's ``ecg_encoder`` section, a pooling name and the config's ``aggregator``
    section (``study_dim``, ``num_heads``, ``joint_dim``; None: the paper's sizes); the ECG
    encoder starts from the OTiS checkpoint when ``encoder["weights"]`` is set;
    ``centre_means``: the probabilistic objective's (train.probabilistic.centre_means)."""
    ecg_encoder = ECGEncoder(
        embed_dim=encoder["embed_dim"],
        depth=encoder["depth"],
        num_heads=encoder["num_heads"],
        mlp_ratio=encoder["mlp_ratio"],
        patch_size=encoder["patch_size"],
        n_samples=encoder["n_samples"],
        drop_path=encoder["drop_path"],
    )
    if encoder.get("weights"):
        report = load_otis_checkpoint(ecg_encoder, encoder["weights"])
        log.info("ECG encoder from OTiS checkpoint: %s", report)
    return build_echo2ecg(ecg_encoder, pooling, objective, centre_means, **(aggregator or {}))


def train_settings(
    train: dict, encoder: dict, pooling: str, objective: str = "clip"
) -> TrainSettings:
    """TrainSettings from the config's ``train`` section (unknown keys are an error) for a
    variant's pooling and objective."""
    known = {f.name for f in fields(TrainSettings)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in train.items()}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"train settings not understood: {', '.join(sorted(unknown))}")
    return TrainSettings(
        **values,
        n_samples=encoder["n_samples"],
        single_view=pooling == "single",
        objective=objective,
    )


def pretrain_variant(
    variant: str,
    spec: dict,
    encoder: dict,
    train_config: dict,
    train_data: PairData,
    val_data: PairData,
    outputs: TrainOutputs,
    loss_plot: str | Path,
    device: str = "cpu",
    extra: dict | None = None,
    aggregator: dict | None = None,
) -> pd.DataFrame:
    """Train (or, with ``spec["train"]`` false, only initialise) one variant.

    aggregator: the config's ``aggregator`` section (the study side's sizes; None: the
    paper's). Writes the checkpoints and history of ``outputs`` and the loss curve (PNG) to
    ``loss_plot``; returns the history (empty for an untrained variant).
    """
    objective = spec.get("objective", "clip")
    settings = train_settings(train_config, encoder, spec["pooling"], objective)
    with torch.random.fork_rng(devices=[]):  # the init is the seed's; the global RNG is left
        torch.manual_seed(settings.seed)
        model = build_model(
            encoder, spec["pooling"], aggregator, objective, settings.probabilistic.centre_means
        )
    extra = {
        "variant": variant,
        "variant_spec": spec,
        "ecg_encoder": encoder,
        "aggregator": aggregator,
        **(extra or {}),
    }
    if spec.get("train", True):
        history = train(model, train_data, val_data, settings, outputs, device=device, extra=extra)
    else:
        history = untrained_checkpoints(model, settings, outputs, extra)
    plot_history(history, loss_plot, f"{variant}: contrastive loss")
    return history


def untrained_checkpoints(
    model: Echo2ECG, settings: TrainSettings, outputs: TrainOutputs, extra: dict
) -> pd.DataFrame:
    """The unimodal baseline: the model at its initialisation, saved as best and last,
    with an empty history."""
    for path in (outputs.best, outputs.last):
        save_checkpoint(model, settings, 0, float("nan"), extra, path)
    history = pd.DataFrame(columns=HISTORY_COLUMNS)
    write_history(history, outputs.history)
    return history
