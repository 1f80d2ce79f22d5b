"""Training settings of one variant: every hyperparameter the loop reads, checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from echo2ecg import vocabulary
from echo2ecg.train.augment import AugmentParams, EcgAugment

SINGLE_VIEW_SAMPLINGS = ("every_view", "one_per_study")


@dataclass(frozen=True)
class ProbabilisticParams:
    """The PCME++ objective (EchoingECG); defaults are PCME++'s (docs/variants.md)."""

    vib_beta: float = 1e-4  # PCME++: weight of the KL-to-N(0, I) information bottleneck
    pseudo_positive_alpha: float = 0.0  # off; PCME++ weighs its pseudo-positives 0.1
    centre_means: bool = True  # not in PCME++: centre each side's means (docs/variants.md)

    def __post_init__(self) -> None:
        if self.vib_beta < 0 or self.pseudo_positive_alpha < 0:
            raise ValueError("vib_beta and pseudo_positive_alpha must not be negative")


@dataclass(frozen=True)
class HierarchicalParams:
    """The hierarchical objective (Echo-Enhanced ECG); the published method gives no
    values, so these are chosen (docs/variants.md says why)."""

    temperature: float = 0.1  # τ of the mined cross-entropies
    margin_same_patient: float = 0.1  # cosine margin for negatives of the ECG's own patient
    margin: float = 0.3  # wider cosine margin for other patients' negatives
    study_weight: float = 1.0  # the three levels and the shifted-pair term
    patient_weight: float = 1.0
    token_weight: float = 1.0
    shift_weight: float = 1.0
    shift_fraction: float = 0.08  # shift of the negative trace, share of the model input

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.margin_same_patient <= self.margin <= 2:
            raise ValueError(
                "margins must satisfy 0 <= margin_same_patient <= margin <= 2 (cosine), "
                f"got {self.margin_same_patient} and {self.margin}"
            )
        if not 0 < self.shift_fraction < 1:
            raise ValueError(f"shift_fraction must lie in (0, 1), got {self.shift_fraction}")


@dataclass
class TrainSettings:
    """Training hyperparameters; the defaults are the paper's (docs/method.md sections 3 and 6)."""

    epochs: int = 50  # paper: 50
    batch_size: int = 256  # paper: 256 pairs
    lr: float = 5e-4  # paper: base learning rate 5e-4
    layer_decay: float = 0.75  # paper: layer-wise lr decay 0.75 over the ECG blocks
    weight_decay: float = 1e-7  # paper: 1e-7 (not on biases, norms, tokens, positions)
    warmup_epochs: float = 5  # reference pretraining config: 5 (docs/method.md section 6: 2)
    warmup_start: float = 0.1  # paper: warm-up starts at 0.1·lr
    min_lr: float = 0.1  # paper: cosine ends at 0.1·lr at the last epoch
    betas: tuple[float, float] = (0.9, 0.999)  # paper: AdamW betas
    temperature: float = 0.5  # paper: fixed CLIP temperature τ = 0.5
    seed: int = 42  # paper: 42
    n_samples: int = 1008  # paper: model input length (docs/method.md section 3)
    max_views: int = 128  # paper: up to 128 views per study
    single_view: bool = False  # the single-view ablation (set by the variant)
    single_view_sampling: str = "every_view"  # reference: every (ECG, view) row a sample;
    #                                     "one_per_study": one random view per study and epoch
    embeddings_share_block0: bool = True  # reference: tokeniser and embeddings decay as block 0
    num_workers: int = 0  # loader worker processes (0: in the training process)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, float32 on CPU
    augmentation: bool = True  # paper (OTiS augmentations); False: random crop only
    standardize_views: bool = False  # reference: raw view embeddings; True: centre and
    #                                     scale them by the training views' statistics
    augment_params: AugmentParams = field(default_factory=AugmentParams)  # paper (OTiS)
    objective: str = "clip"  # paper: symmetric InfoNCE (set by the variant)
    probabilistic: ProbabilisticParams = field(default_factory=ProbabilisticParams)
    hierarchical: HierarchicalParams = field(default_factory=HierarchicalParams)

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if isinstance(self.augment_params, dict):  # from a config or a saved checkpoint
            self.augment_params = AugmentParams(**self.augment_params)
        if isinstance(self.probabilistic, dict):
            self.probabilistic = ProbabilisticParams(**self.probabilistic)
        if isinstance(self.hierarchical, dict):
            self.hierarchical = HierarchicalParams(**self.hierarchical)
        if self.objective not in vocabulary.OBJECTIVES:
            raise ValueError(
                f"objective must be one of {vocabulary.OBJECTIVES}, got {self.objective!r}"
            )
        if self.precision not in vocabulary.PRECISIONS:
            raise ValueError(
                f"precision must be one of {vocabulary.PRECISIONS}, got {self.precision!r}"
            )
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (the CLIP loss needs negatives)")
        if self.single_view_sampling not in SINGLE_VIEW_SAMPLINGS:
            raise ValueError(
                f"single_view_sampling must be one of {SINGLE_VIEW_SAMPLINGS}, "
                f"got {self.single_view_sampling!r}"
            )

    @property
    def shift_samples(self) -> int:
        """Samples the shifted-pair term moves a trace back (0: not the hierarchical
        objective). Set whatever its weight, so that trace rows see the same windows."""
        if self.objective != "hierarchical":
            return 0
        return max(1, round(self.hierarchical.shift_fraction * self.n_samples))

    def augment(self) -> EcgAugment:
        """The training augmentation these settings describe."""
        return EcgAugment(self.n_samples, self.augment_params)
