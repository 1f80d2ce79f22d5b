"""Stage 3, training: ECG-echo pairs and splits (:mod:`pairs`), ECG augmentation
(:mod:`augment`), the contrastive loop on cached view embeddings (:mod:`loop`) and the
per-variant entry point (:mod:`pretrain`)."""
