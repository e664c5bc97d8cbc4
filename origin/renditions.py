"""Renditions as JSON: the form kept in Cassandra (`reels.renditions`) and beside the media
(`renditions.json`), so a re-upload of the same content needs no new measurement."""

from __future__ import annotations

import json
from collections.abc import Sequence

from protos import origin_pb2


def to_json(renditions: Sequence[origin_pb2.Rendition]) -> str:
    return json.dumps(
        [
            {
                "name": r.name,
                "width": r.width,
                "height": r.height,
                "bandwidth": r.bandwidth,
                "average_bandwidth": r.average_bandwidth,
            }
            for r in renditions
        ]
    )


def from_json(text: str | None) -> list[origin_pb2.Rendition]:
    if not text:
        return []
    return [origin_pb2.Rendition(**entry) for entry in json.loads(text)]
