"""Build small DICOM files for tests (real pydicom datasets, written to bytes)."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

PATIENT_NAME = "Doe^Jane-Zyxwv"
PATIENT_ID = "MRN-99887766"


def dicom_bytes(
    pixels: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    frames: int = 1,
    rows: int | None = None,
    cols: int | None = None,
    with_pixels: bool = True,
    modality: str = "CR",
    body_part: str | None = None,
    view: str | None = None,
) -> bytes:
    """A CR-like DICOM holding patient identifiers that must never reach storage or logs."""
    if pixels is None:
        pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 3) % 4096
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "St Example Hospital"
    ds.Modality = modality
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view is not None:
        ds.ViewPosition = view
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows or pixels.shape[0]
    ds.Columns = cols or pixels.shape[1]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        pixels = np.stack([pixels] * frames)
    if with_pixels:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
