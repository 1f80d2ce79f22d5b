"""DICOM writing for the synthetic cohort: ultrasound multi-frame echo views, the
deliberately broken files, and the patient/study header shared with DICOM ECGs.

Echo encodings (``ECHO_ENCODINGS``):

- ``rgb``: uncompressed RGB, Explicit VR Little Endian;
- ``jpeg_ybr``: JPEG baseline, Photometric Interpretation YBR_FULL_422, one JPEG per
  frame (4:2:2 chroma subsampling), encapsulated;
- ``mono_rle``: MONOCHROME2, RLE Lossless (pydicom's encoder);
- ``mono_raw``: MONOCHROME2, uncompressed.

Headers carry a fake but real-looking identity (name, MRN, birth date, UIDs, dates) so that
tests can show that none of it leaks into pipeline outputs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from echo2ecg.synth.echo_views import EcgStrip, ScanSector

ECHO_ENCODINGS = ("rgb", "jpeg_ybr", "mono_rle", "mono_raw")
MANUFACTURER = "Acme Sonics"
JPEG_QUALITY = 88


@dataclass(frozen=True)
class DicomIdentity:
    """Who and which study a DICOM file belongs to (all fake): ``birth_date`` is
    YYYYMMDD, ``sex`` M/F, ``accession`` the study's accession number."""

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_uid: str
    accession: str
    study_time: datetime
    institution: str


@dataclass(frozen=True)
class DicomInstance:
    """One file within a study: its series, SOP instance and acquisition time."""

    series_uid: str
    sop_uid: str
    acquired: datetime
    series_number: int
    instance_number: int


def _date(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def _time(moment: datetime) -> str:
    return moment.strftime("%H%M%S")


def base_dataset(
    sop_class: str,
    transfer_syntax: str,
    modality: str,
    identity: DicomIdentity,
    instance: DicomInstance,
) -> Dataset:
    """A dataset with file meta, patient, study, series and SOP common attributes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = instance.sop_uid
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance.sop_uid
    ds.StudyDate = _date(identity.study_time)
    ds.StudyTime = _time(identity.study_time)
    ds.SeriesDate = ds.ContentDate = _date(instance.acquired)
    ds.SeriesTime = ds.ContentTime = _time(instance.acquired)
    ds.AcquisitionDateTime = instance.acquired.strftime("%Y%m%d%H%M%S")
    ds.AccessionNumber = identity.accession
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = identity.institution
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.sex
    ds.StudyInstanceUID = identity.study_uid
    ds.SeriesInstanceUID = instance.series_uid
    ds.StudyID = identity.accession[-6:]
    ds.SeriesNumber = instance.series_number
    ds.InstanceNumber = instance.instance_number
    return ds


def _image_pixel_module(
    ds: Dataset, n_frames: int, rows: int, cols: int, colour: bool, photometric: str
) -> None:
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.NumberOfFrames = n_frames
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0


def _ultrasound_region(sector: ScanSector, cols: int, rows: int) -> Dataset:
    """Sequence of Ultrasound Regions item: the fan's bounding box and pixel spacing (cm)."""
    x0, y0, x1, y1 = sector.bounding_box()
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, cols - 1), min(y1, rows - 1)
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D tissue image
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1, y1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = sector.depth_cm / sector.radius
    region.ReferencePixelX0 = int(round(sector.apex_x)) - x0
    region.ReferencePixelY0 = int(round(sector.apex_y)) - y0
    return region


# DICOM PS3.3 C.8.5.5.1: Region Spatial Format 4 = waveform, Region Data Type 000AH = ECG
# trace, Physical Units 4 = seconds, 0 = none (the standard has no unit for voltage).
_WAVEFORM_FORMAT, _ECG_TRACE, _SECONDS, _NO_UNIT = 4, 0x000A, 4, 0


def _ecg_trace_region(strip: EcgStrip) -> Dataset:
    """Sequence of Ultrasound Regions item of the ECG strip: its box and seconds per pixel
    across; the zero line as the reference row."""
    region = Dataset()
    region.RegionSpatialFormat = _WAVEFORM_FORMAT
    region.RegionDataType = _ECG_TRACE
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = strip.x0, strip.y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = strip.x1 - 1, strip.y1 - 1
    region.PhysicalUnitsXDirection = _SECONDS
    region.PhysicalUnitsYDirection = _NO_UNIT
    region.PhysicalDeltaX = strip.seconds_per_px
    region.PhysicalDeltaY = 1.0
    region.ReferencePixelX0 = 0
    region.ReferencePixelY0 = int(round(strip.baseline_y)) - strip.y0
    return region


def _jpeg_frames(frames: np.ndarray) -> list[bytes]:
    """One baseline JPEG per RGB frame (F, H, W, 3); Pillow stores YCbCr with 4:2:2 chroma."""
    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame, mode="RGB").save(
            buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=1
        )
        encoded.append(buffer.getvalue())
    return encoded


def to_gray(frames: np.ndarray) -> np.ndarray:
    """uint8 (F, H, W) luma of RGB frames (F, H, W, 3)."""
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])


def _set_pixels(ds: Dataset, frames: np.ndarray, encoding: str) -> None:
    """Pixel module and Pixel Data for ``encoding``; also sets the transfer syntax."""
    n_frames, rows, cols = frames.shape[:3]
    if encoding == "rgb":
        _image_pixel_module(ds, n_frames, rows, cols, True, "RGB")
        ds.PixelData = np.ascontiguousarray(frames).tobytes()
        ds["PixelData"].VR = "OB"
    elif encoding == "jpeg_ybr":
        _image_pixel_module(ds, n_frames, rows, cols, True, "YBR_FULL_422")
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate(_jpeg_frames(frames))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    elif encoding in ("mono_rle", "mono_raw"):
        _image_pixel_module(ds, n_frames, rows, cols, False, "MONOCHROME2")
        gray = to_gray(frames)
        if encoding == "mono_rle":
            ds.compress(RLELossless, gray, generate_instance_uid=False)
        else:
            ds.PixelData = gray.tobytes()
            ds["PixelData"].VR = "OB"
    else:
        raise ValueError(
            f"unknown echo encoding {encoding!r}; expected one of {', '.join(ECHO_ENCODINGS)}"
        )


def echo_dataset(
    frames: np.ndarray,
    encoding: str,
    fps: float,
    identity: DicomIdentity,
    instance: DicomInstance,
    sector: ScanSector | None,
    ecg_strip: EcgStrip | None = None,
) -> Dataset:
    """An Ultrasound Multi-frame Image dataset of RGB ``frames`` (F, H, W, 3) uint8.

    ``sector`` adds the Sequence of Ultrasound Regions (0018,6011) with the fan's region;
    None leaves the sequence out. ``ecg_strip`` adds an ECG-trace region to it.
    """
    ds = base_dataset(
        UltrasoundMultiFrameImageStorage, ExplicitVRLittleEndian, "US", identity, instance
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0011"]
    ds.ManufacturerModelName = "Sonic S7"
    ds.FrameTime = f"{1000.0 / fps:.4f}"
    ds.FrameIncrementPointer = Tag("FrameTime")
    ds.CineRate = int(round(fps))
    ds.RecommendedDisplayFrameRate = int(round(fps))
    if sector is not None:
        regions = [_ultrasound_region(sector, cols=frames.shape[2], rows=frames.shape[1])]
        if ecg_strip is not None:
            regions.append(_ecg_trace_region(ecg_strip))
        ds.SequenceOfUltrasoundRegions = Sequence(regions)
    _set_pixels(ds, frames, encoding)
    return ds


def write_echo(
    path: Path,
    frames: np.ndarray,
    encoding: str,
    fps: float,
    identity: DicomIdentity,
    instance: DicomInstance,
    sector: ScanSector | None,
    ecg_strip: EcgStrip | None = None,
) -> None:
    """Write one echo view (see :func:`echo_dataset`) as a DICOM Part 10 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = echo_dataset(frames, encoding, fps, identity, instance, sector, ecg_strip)
    ds.save_as(path, enforce_file_format=True)


def write_truncated_echo(
    path: Path,
    frames: np.ndarray,
    fps: float,
    identity: DicomIdentity,
    instance: DicomInstance,
    keep_fraction: float = 0.4,
) -> None:
    """A broken file: an uncompressed echo view cut off part-way through its Pixel Data."""
    buffer = io.BytesIO()
    ds = echo_dataset(frames, "rgb", fps, identity, instance, None)
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep_fraction)])


def write_report_screenshot(
    path: Path, rows: int, cols: int, identity: DicomIdentity, instance: DicomInstance
) -> None:
    """A non-ultrasound file that turns up in echo studies: a single-frame Secondary
    Capture (modality OT) of a typed report page, MONOCHROME2."""
    page = np.full((rows, cols), 235, dtype=np.uint8)
    scale = max(0.3, rows / 700.0)
    lines = (
        "ECHOCARDIOGRAPHY REPORT",
        identity.institution,
        "LV function: see measurements",
        "Valves: see comments",
        "Signed electronically",
    )
    for i, text in enumerate(lines):
        cv2.putText(
            page,
            text,
            (10, int((i + 1) * rows / 8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            20,
            1,
            cv2.LINE_AA,
        )
    ds = base_dataset(
        SecondaryCaptureImageStorage, ExplicitVRLittleEndian, "OT", identity, instance
    )
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = page.tobytes()
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
