"""The clean copy of an upload: PNG and JPEG with every metadata chunk and segment removed.

X-ray exports carry the patient in their metadata as often as in DICOM headers: PNG
``tEXt``/``iTXt``/``zTXt``/``eXIf``/``tIME`` chunks, JPEG APP1 (EXIF, XMP), APP13 (IPTC),
APP2 (ICC profiles, whose description is free text) and COM segments, and anything appended
after the image's end (IEND, EOI). What is stored and served is rebuilt from the file's own
chunk or segment stream with only what decoding needs, copied byte for byte: nothing is
re-encoded, so the pixels are exactly those uploaded.

Kept, because the decoded pixels depend on them:

- PNG: IHDR, PLTE, tRNS (palette and transparency), IDAT, IEND. Colour-management chunks
  (gAMA, cHRM, sRGB, iCCP) do not change the decoded values and iCCP carries free text.
- JPEG: the frame, tables, restart interval and scans (SOFn, DHT, DQT, DAC, DRI, DNL, SOS and
  the entropy-coded data, RSTn) and an APP14 "Adobe" segment of the standard 12-byte form,
  which tells the decoder whether the components are RGB, YCbCr or YCCK (no free text).
  APP0 (JFIF) only restates YCbCr, what a decoder assumes for 1 or 3 components anyway.

The input has already passed :mod:`pneumonia_api.images`' structure checks (PNG CRCs, JPEG
segments up to EOI); anything unexpected here raises ValueError, which the caller refuses.
"""

from __future__ import annotations

import struct

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
ADOBE_APP14_LENGTH = 14  # 2 length bytes + "Adobe" + version, flags0, flags1, transform


def clean(data: bytes, kind: str) -> bytes:
    """The clean copy of a PNG or JPEG (``kind`` 'png' or 'jpeg')."""
    if kind == "png":
        return clean_png(data)
    if kind == "jpeg":
        return clean_jpeg(data)
    raise ValueError(f"no clean copy for {kind}")


def clean_png(data: bytes) -> bytes:
    """The signature and the chunks decoding needs, up to IEND; nothing after it."""
    if not data.startswith(PNG_MAGIC):
        raise ValueError("not a PNG")
    out, pos = [PNG_MAGIC], len(PNG_MAGIC)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        stop = pos + 12 + length
        if stop > len(data):
            raise ValueError("chunk runs past the end")
        if kind in PNG_KEEP:
            out.append(data[pos:stop])
        if kind == b"IEND":
            return b"".join(out)
        pos = stop
    raise ValueError("no IEND")


def _is_adobe(data: bytes, pos: int, length: int) -> bool:
    return length == ADOBE_APP14_LENGTH and data[pos + 4 : pos + 9] == b"Adobe"


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data that starts at ``pos`` ends: at the first marker that is
    neither a stuffed 0xFF00 nor a restart marker (RSTn)."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            raise ValueError("scan without an end")
        nxt = data[i + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
            continue
        return i


def clean_jpeg(data: bytes) -> bytes:
    """SOI, the segments decoding needs and every scan, then EOI; nothing after it."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    out, pos, end = [b"\xff\xd8"], 2, len(data)
    while pos + 2 <= end:
        if data[pos] != 0xFF:
            raise ValueError("expected a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:  # EOI: whatever follows is dropped
            out.append(b"\xff\xd9")
            return b"".join(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        if pos + 4 > end:
            raise ValueError("segment header cut")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        stop = pos + 2 + length
        if length < 2 or stop > end:
            raise ValueError("segment runs past the end")
        metadata = 0xE0 <= marker <= 0xEF or marker == 0xFE  # APPn, COM
        if not metadata or (marker == 0xEE and _is_adobe(data, pos, length)):
            out.append(data[pos:stop])
        pos = stop
        if marker == 0xDA:  # start of scan: copy the entropy-coded data as it is
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    raise ValueError("no EOI")
