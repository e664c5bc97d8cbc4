"""Hypothesis strategies for hostile protobuf messages, built from the message descriptors:
every field gets random and boundary values (0, max uint64, int64 extremes, unknown enum
numbers, long and non-ASCII strings), repeated fields get empty, short or huge lists, and
columnar batches get columns of equal or deliberately mismatched lengths."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from protos import common_pb2

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U32_MAX = 2**32 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1

# Length of the one huge repeated field a message may get: big enough to hit every
# per-call limit (1,000 reels, 100,000 events), small enough to stay under 16 MB.
HUGE_REPEATED = 200_001

_BOUNDARY_INTS: dict[int, tuple[int, ...]] = {
    FieldDescriptor.TYPE_UINT64: (0, 1, 2**63 - 1, 2**63, U64_MAX),
    FieldDescriptor.TYPE_FIXED64: (0, 1, 2**63, U64_MAX),
    FieldDescriptor.TYPE_INT64: (0, -1, 1, I64_MIN, I64_MAX),
    FieldDescriptor.TYPE_SINT64: (0, -1, 1, I64_MIN, I64_MAX),
    FieldDescriptor.TYPE_UINT32: (0, 1, U32_MAX),
    FieldDescriptor.TYPE_INT32: (0, -1, I32_MIN, I32_MAX),
    FieldDescriptor.TYPE_ENUM: (0, 1, 2, 3, -1, 99, I32_MAX, I32_MIN),
}
_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_UINT64: (0, U64_MAX),
    FieldDescriptor.TYPE_FIXED64: (0, U64_MAX),
    FieldDescriptor.TYPE_INT64: (I64_MIN, I64_MAX),
    FieldDescriptor.TYPE_SINT64: (I64_MIN, I64_MAX),
    FieldDescriptor.TYPE_UINT32: (0, U32_MAX),
    FieldDescriptor.TYPE_INT32: (I32_MIN, I32_MAX),
    FieldDescriptor.TYPE_ENUM: (I32_MIN, I32_MAX),
}

_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "../../etc/passwd", "a" * 5_000, "\x00", "é" * 300, "%s%n{0}"]),
)
_bytes = st.one_of(st.binary(max_size=64), st.just(b"\x00" * 100_000))


def scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    """Random or boundary values of one (non-message) field."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return _text
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _bytes
    low, high = _RANGES[field.type]
    # Small values hit the paths that accept input; boundaries the ones that must refuse it.
    return st.one_of(
        st.integers(0, 1_000),
        st.sampled_from(_BOUNDARY_INTS[field.type]),
        st.integers(low, high),
    )


def _huge_element(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    """The repeated value of a huge list: any number, but short strings and bytes, so the
    list stays a few MB (5,000-character hashtags repeated 200,001 times in eight nested
    reels made one ImportReels request of 8 GB and took the test process to 20 GB)."""
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=8), st.just("é"))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    return scalar(field)


def message(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values (a dict for the message class) of any message type, recursively."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2:
                continue
            value: st.SearchStrategy[Any] = message(field.message_type, depth + 1)
        else:
            value = scalar(field)
        if field.is_repeated:
            lists = st.lists(value, max_size=8)
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                lists = st.one_of(lists, _huge_element(field).map(lambda v: [v] * HUGE_REPEATED))
            fields[field.name] = lists
        else:
            fields[field.name] = value
    # Oneof members: at most one set, else the last assignment silently wins.
    for oneof in descriptor.oneofs:
        names = [f.name for f in oneof.fields]
        for name in names[1:]:
            fields.pop(name, None)
    return st.fixed_dictionaries({}, optional=fields)


def build(message_class: type[Message], values: dict[str, Any]) -> Message:
    """The message from `message()` values (nested dicts become messages)."""
    return _fill(message_class(), values)


def _fill(target: Message, values: dict[str, Any]) -> Message:
    descriptor = target.DESCRIPTOR
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.is_repeated:
                for item in value:
                    _fill(getattr(target, name).add(), item)
            else:
                _fill(getattr(target, name), value)
        elif field.is_repeated:
            getattr(target, name).extend(value)
        else:
            setattr(target, name, value)
    return target


def messages(message_class: type[Message]) -> st.SearchStrategy[Message]:
    return message(message_class.DESCRIPTOR).map(lambda v: build(message_class, v))


_COLUMNS = ("reel_ids", "user_ids", "kinds", "watch_ms", "client_ts_ms", "devices", "ip_hashes")


@st.composite
def event_batches(draw: st.DrawFn) -> common_pb2.EventBatch:
    """Columnar batches: usually consistent columns of hostile values, sometimes one
    column longer or shorter, sometimes countries of the wrong width."""
    count = draw(st.one_of(st.integers(0, 20), st.sampled_from([1_000, 100_001])))
    descriptor = common_pb2.EventBatch.DESCRIPTOR
    batch = common_pb2.EventBatch()
    for name in _COLUMNS:
        field = descriptor.fields_by_name[name]
        optional = name not in ("reel_ids", "user_ids", "kinds")
        if optional and draw(st.booleans()):
            continue
        length = count
        if draw(st.integers(0, 9)) == 0:
            length = max(0, count + draw(st.sampled_from([-1, 1, 5])))
        if length > 50:
            getattr(batch, name).extend([draw(scalar(field))] * length)
        else:
            getattr(batch, name).extend(
                draw(st.lists(scalar(field), min_size=length, max_size=length))
            )
    if draw(st.booleans()):
        width = draw(st.sampled_from([2, 2, 1, 3]))
        batch.countries = draw(st.binary(min_size=width, max_size=width)) * count
    return batch


def garbage() -> st.SearchStrategy[bytes]:
    """Bytes that are often not a valid protobuf encoding of anything."""
    return st.one_of(
        st.binary(max_size=256),
        st.sampled_from(
            [
                b"\xff" * 64,  # varint that never ends
                b"\x0a\xff\xff\xff\xff\x0f",  # length-delimited field claiming 4 GB
                b"\x0a\x05abc",  # truncated length-delimited field
                b"\x08",  # tag without a value
                b"\x07\x00",  # wire type 7 does not exist
                b"\x12\x03\xc3\x28\x00",  # invalid UTF-8 where strings may sit
            ]
        ),
    )
