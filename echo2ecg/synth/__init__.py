"""The embedded demo cohort: a synthetic hospital written in real file formats (DICOM
echo views, WFDB / DICOM / NumPy ECGs) with manifests; see :mod:`echo2ecg.synth.cohort`."""
