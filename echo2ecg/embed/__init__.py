"""Stage 2, embedding: the frozen echo encoder run once per view (:mod:`views`), on the
device a job is given (:mod:`devices`)."""
