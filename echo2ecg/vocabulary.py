"""The words every stage and the demo generator share, each defined once.

Plain constants and one pure function: this module imports nothing, so the readers, the
pipeline stages and :mod:`echo2ecg.synth` (which must not depend on the pipeline it feeds)
can all use it.
"""

# The 12 standard leads, in the order of every stored ECG (axis 1 of (N, 12, T)).
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Arithmetic precision of a stage's forward passes ("auto": each stage's own default).
PRECISIONS = ("auto", "bf16", "float32")
# Training objectives (docs/variants.md): the paper's CLIP loss, EchoingECG's PCME++ and
# Echo-Enhanced ECG's hierarchical mined losses.
OBJECTIVES = ("clip", "probabilistic", "hierarchical")

# ECG file formats a manifest's `format` column may name.
# "xml" reads any of the three XML schemas (told from the root element); the schema names
# refuse a file of another schema
ECG_FORMATS = ("wfdb", "dicom", "numpy", "xml", "cardiosoft", "muse", "hl7aecg")

# Manifest columns (README "Manifests"): required, then optional ones.
ECHO_VIEW_COLUMNS = ("path", "patient_id", "study_id", "acquisition_time")
ECHO_VIEW_OPTIONAL_COLUMNS = ("view_id",)  # default: the path
ECG_COLUMNS = ("path", "patient_id", "ecg_id", "acquisition_time", "format")
ECG_OPTIONAL_COLUMNS = ("fs",)  # Hz, for formats that do not store it (.npy)
PHENOTYPES = ("lvef", "lvedv", "lvesv", "lvsv", "shd")  # %, ml, ml, ml, 0/1
LABEL_COLUMNS = ("patient_id", "study_id", "acquisition_time", *PHENOTYPES)

# LVEF classes (ESC 2021 heart-failure guideline): reduced <= 40 %, mildly reduced 41-49 %,
# normal >= 50 %.
LVEF_CLASSES = ("reduced", "mildly reduced", "normal")
LVEF_REDUCED_MAX = 40.0
LVEF_NORMAL_MIN = 50.0


def lvef_class_of(lvef: float) -> int:
    """Index into :data:`LVEF_CLASSES` of one LVEF value (%)."""
    if lvef <= LVEF_REDUCED_MAX:
        return 0
    return 1 if lvef < LVEF_NORMAL_MIN else 2
