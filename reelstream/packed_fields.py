"""Protobuf wire bytes of packed repeated integer fields, encoded from numpy columns.

Filling a message's repeated field costs a Python int per value (`tolist` then `extend`);
a hot path that builds large columnar messages writes the wire bytes directly instead, a
few array operations per column. The bytes are what the protobuf encoding defines for a
packed field (`tag, length, varints`), so any protobuf parser reads the message.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WIRE_LENGTH_DELIMITED = 2
_LOW_56 = (1 << 56) - 1
_LOW_7_PER_BYTE = 0x7F7F_7F7F_7F7F_7F7F
_HIGH_BIT_PER_BYTE = 0x8080_8080_8080_8080
# 56 bits to eight 7-bit groups, one per byte: 28-bit halves to 32-bit lanes, 14-bit
# quarters to 16-bit lanes, 7-bit groups to bytes.
_SPREAD_STEPS = [
    (np.uint64(0x0000_0000_0FFF_FFFF), np.uint64(4)),
    (np.uint64(0x0000_3FFF_0000_3FFF), np.uint64(2)),
    (np.uint64(0x007F_007F_007F_007F), np.uint64(1)),
]
# A ten-byte varint as a packed record: its first eight bytes, then the last two.
_TEN_BYTES = np.dtype([("low", "<u8"), ("high", "<u2")])


def varints(values: npt.NDArray[np.integer] | npt.NDArray[np.bool_]) -> bytes:
    """The base-128 varints of `values`, back to back.

    Signed values are encoded as their 64-bit two's complement, as protobuf does for
    int32/int64 (a negative value takes ten bytes).
    """
    if len(values) == 0:
        return b""
    if values.dtype.kind == "i":
        values = values.astype(np.int64, copy=False).view(np.uint64)
    unsigned = values.astype(np.uint64, copy=False)
    width = max(1, (int(unsigned.max()).bit_length() + 6) // 7)
    if width == 1:
        return unsigned.astype(np.uint8).tobytes()
    # The first eight bytes of each varint are built in a little-endian 64-bit word: seven
    # bits per byte, spread by halving steps, then the continuation bit of every byte that
    # has a non-zero byte after it. Bits 56-63 take up to two more bytes.
    word = unsigned & np.uint64(_LOW_56)
    for mask, shift in _SPREAD_STEPS:
        word = (word & mask) | ((word & ~mask) << shift)
    nonzero = (word + np.uint64(_LOW_7_PER_BYTE)) & np.uint64(_HIGH_BIT_PER_BYTE)
    later = nonzero >> np.uint64(8)
    if width > 8:  # a ninth byte follows the eighth
        later |= (unsigned >= np.uint64(1 << 56)).astype(np.uint64) << np.uint64(63)
    for bits in (8, 16, 32):
        later |= later >> np.uint64(bits)
    word |= later & np.uint64(_HIGH_BIT_PER_BYTE)
    flat = word.astype("<u8", copy=False).view(np.uint8)
    stride = 8
    if width > 8:
        high = unsigned >> np.uint64(56)
        tail = (high & np.uint64(0x7F)) | ((high >> np.uint64(7)) << np.uint64(8))
        tail |= (high >= np.uint64(0x80)).astype(np.uint64) << np.uint64(7)
        rows = np.empty(len(unsigned), dtype=_TEN_BYTES)
        rows["low"], rows["high"] = word, tail
        flat, stride = rows.view(np.uint8), 10
    # A byte belongs to its varint when it is the first or the one before continues.
    keep = np.empty(len(flat), dtype=np.bool_)
    np.greater_equal(flat[:-1], 0x80, out=keep[1:])
    keep[::stride] = True
    return flat[keep].tobytes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """One length-delimited field: a packed column, a string or an embedded message."""
    return _varint(field_number << 3 | WIRE_LENGTH_DELIMITED) + _varint(len(payload)) + payload


def packed(field_number: int, values: npt.NDArray[np.integer] | npt.NDArray[np.bool_]) -> bytes:
    """A packed repeated field; nothing for an empty column (as protobuf writes it)."""
    if len(values) == 0:
        return b""
    return length_delimited(field_number, varints(values))
