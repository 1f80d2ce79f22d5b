"""Training settings of one variant: every hyperparameter the loop reads, checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from echo2ecg import vocabulary
from echo2ecg.train.augment import AugmentParams, EcgAugment

SINGLE_VIEW_SAMPLINGS = ("every_view", "one_per_study")


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

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        if isinstance(self.augment_params, dict):  # from a config or a saved checkpoint
            self.augment_params = AugmentParams(**self.augment_params)
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

    def augment(self) -> EcgAugment:
        """The training augmentation these settings describe."""
        return EcgAugment(self.n_samples, self.augment_params)
