"""Stage 4, evaluation: feature files (:mod:`features`), metrics (:mod:`metrics`), the
kNN, data-scaling and retrieval tables (:mod:`downstream`), the paper's claims checked
(:mod:`findings`) and the trained encoder as a feature extractor (:mod:`extractor`)."""
