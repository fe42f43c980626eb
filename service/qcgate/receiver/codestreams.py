"""What a compressed frame says about itself, read from its codestream header before any decode.

A JPEG, JPEG-LS or JPEG 2000 frame carries its own width, height, components and bit depth; the
DICOM header carries another copy. Decoding trusts the codestream, so a 195-byte JPEG 2000 frame in
a dataset whose header said 64x64 decoded to 33.5 MB in the receiving thread (issue 12). Reading
the few bytes of the start-of-frame (JPEG, JPEG-LS) or SIZ (JPEG 2000) marker segment lets the
receiver refuse such a frame before the decoder allocates anything. RLE has no geometry of its own:
its header is only the segment count, which must match samples times bytes per sample.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["FrameGeometry", "frame_geometry", "rle_segments"]

_SOI, _SOC, _SIZ = b"\xff\xd8", b"\xff\x4f", b"\xff\x51"
# Start-of-frame markers: JPEG baseline, extended, progressive, lossless (Huffman and arithmetic), JPEG-LS.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length (TEM, RSTn)
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_JP2_SEARCH_BYTES = 4096  # a JP2 wrapper puts its codestream box after a few small header boxes


@dataclass(frozen=True)
class FrameGeometry:
    rows: int
    columns: int
    components: int
    bits: int  # sample precision


def frame_geometry(fragment: bytes) -> FrameGeometry | None:
    """The geometry a frame's codestream declares, or None when its first fragment carries no
    header this module reads (the decoder then decides, within the decoded-size limit)."""
    if fragment.startswith(_SOI):
        return _jpeg_geometry(fragment)
    if fragment.startswith(_SOC + _SIZ):
        return _j2k_geometry(fragment, len(_SOC))
    if fragment.startswith(_JP2_SIGNATURE):
        start = fragment.find(_SOC + _SIZ, 0, _JP2_SEARCH_BYTES)
        return None if start < 0 else _j2k_geometry(fragment, start + len(_SOC))
    return None


def _jpeg_geometry(data: bytes) -> FrameGeometry | None:
    """Walk the marker segments after SOI to the first start-of-frame."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if marker in _SOF:
            if position + 10 > len(data):
                return None
            bits, rows, columns, components = struct.unpack_from(">BHHB", data, position + 4)
            return FrameGeometry(rows, columns, components, bits)
        if marker == 0xDA or length < 2:  # start of scan before a frame header: not a valid JPEG
            return None
        position += 2 + length
    return None


def _j2k_geometry(data: bytes, siz: int) -> FrameGeometry | None:
    """Image size from the SIZ segment (ISO/IEC 15444-1 A.5.1): Xsiz - XOsiz by Ysiz - YOsiz."""
    # ``siz`` is the marker's offset: Lsiz, Rsiz, then Xsiz, Ysiz, XOsiz, YOsiz (4 bytes each) at +6,
    # the tile sizes and offsets, Csiz at +38 and the first component's Ssiz at +40.
    if siz + 41 > len(data):
        return None
    x_size, y_size, x_offset, y_offset = struct.unpack_from(">IIII", data, siz + 6)
    (components,) = struct.unpack_from(">H", data, siz + 38)
    if components == 0:
        return None
    bits = (data[siz + 40] & 0x7F) + 1  # Ssiz: depth - 1, the sign in the top bit
    return FrameGeometry(y_size - y_offset, x_size - x_offset, components, bits)


def rle_segments(fragment: bytes) -> int | None:
    """The segment count of an RLE frame's 64-byte header, or None when it is too short."""
    if len(fragment) < 64:
        return None
    (count,) = struct.unpack_from("<I", fragment, 0)
    return int(count)
