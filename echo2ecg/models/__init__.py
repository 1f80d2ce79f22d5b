"""Models (docs/method.md section 5).

- :mod:`~echo2ecg.models.echo_encoder`: the frozen EchoPrime MViTv2-S, clip normalisation.
- :mod:`~echo2ecg.models.ecg_encoder`: the OTiS-style ECG ViT and OTiS weight loading.
- :mod:`~echo2ecg.models.aggregators`: view pools (attention, mean, CLS).
- :mod:`~echo2ecg.models.echo2ecg`: the contrastive model and its loss.
- :mod:`~echo2ecg.models.probabilistic`: Gaussian embeddings and the PCME++ loss.
- :mod:`~echo2ecg.models.hierarchical`: dual-margin mined losses, the shifted-pair term.
- :mod:`~echo2ecg.models.variants`: the model of each training objective.
- :mod:`~echo2ecg.models.torchvision_ops`: importing torchvision beside a CPU-only torch.
"""

from echo2ecg.models.aggregators import ViewAttentionPool, ViewClsPool, ViewMean, ViewMeanPool
from echo2ecg.models.ecg_encoder import ECGEncoder, OtisLoadReport, load_otis_checkpoint
from echo2ecg.models.echo2ecg import POOLINGS, Echo2ECG, clip_loss, count_parameters
from echo2ecg.models.echo_encoder import (
    ECHO_MEAN,
    ECHO_STD,
    EchoEncoderOrigin,
    build_echo_encoder,
    normalise_clips,
)
from echo2ecg.models.hierarchical import HierarchicalEcho2ECG
from echo2ecg.models.probabilistic import ProbabilisticEcho2ECG
from echo2ecg.models.torchvision_ops import import_torchvision
from echo2ecg.models.variants import OBJECTIVES, build_echo2ecg

__all__ = [
    "ECHO_MEAN",
    "ECHO_STD",
    "OBJECTIVES",
    "POOLINGS",
    "ECGEncoder",
    "Echo2ECG",
    "OtisLoadReport",
    "EchoEncoderOrigin",
    "HierarchicalEcho2ECG",
    "ProbabilisticEcho2ECG",
    "ViewAttentionPool",
    "ViewClsPool",
    "ViewMean",
    "ViewMeanPool",
    "build_echo2ecg",
    "build_echo_encoder",
    "clip_loss",
    "count_parameters",
    "import_torchvision",
    "load_otis_checkpoint",
    "normalise_clips",
]
