"""Stage 1, data: DICOM echo views and ECG files → Zarr shards and ledgers.

Readers (:mod:`dicom`, :mod:`ecg_formats`), the clip recipe (:mod:`echo`) and ECG
preprocessing (:mod:`ecg`); manifests, pseudonyms and shard plans (:mod:`manifest`,
:mod:`pseudonym`, :mod:`shard_plan`); the shard runner and its stores and ledgers
(:mod:`shard_run`, :mod:`store`, :mod:`ledger`).
"""
