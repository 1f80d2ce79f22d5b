"""The model of each training objective (docs/variants.md).

clip           Echo2ECG: symmetric InfoNCE, the paper's
probabilistic  ProbabilisticEcho2ECG: Gaussian embeddings, PCME++ (EchoingECG)
hierarchical   HierarchicalEcho2ECG: study / patient / token levels with dual-margin
               mining and the shifted-pair term (Echo-Enhanced ECG)
"""

from __future__ import annotations

from echo2ecg.models.ecg_encoder import ECGEncoder
from echo2ecg.models.echo2ecg import Echo2ECG
from echo2ecg.models.hierarchical import HierarchicalEcho2ECG
from echo2ecg.models.probabilistic import ProbabilisticEcho2ECG
from echo2ecg.vocabulary import OBJECTIVES

_MODELS = {
    "clip": Echo2ECG,
    "probabilistic": ProbabilisticEcho2ECG,
    "hierarchical": HierarchicalEcho2ECG,
}


def build_echo2ecg(
    ecg_encoder: ECGEncoder,
    pooling: str = "attention",
    objective: str = "clip",
    centre_means: bool = True,
    **sizes,
) -> Echo2ECG:
    """The model ``objective`` trains, around ``ecg_encoder``; ``sizes``: Echo2ECG's
    view_dim, study_dim, joint_dim, num_heads; ``centre_means``: the probabilistic model's
    (:class:`ProbabilisticEcho2ECG`), ignored by the others. The two other objectives need
    a view pool (not ``single``, the CLIP ablation)."""
    if objective not in _MODELS:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    if objective != "clip" and pooling == "single":
        raise ValueError(f"the {objective} objective needs a view pool, not 'single'")
    if objective == "probabilistic":
        return ProbabilisticEcho2ECG(ecg_encoder, pooling, centre_means, **sizes)
    return _MODELS[objective](ecg_encoder, pooling, **sizes)
