"""Client side of ApplyCorrections: splits one logical correction by owning shard.

Each shard's part gets the id `<batch_id>/shard-<n>`, so a retry of the whole logical batch
is idempotent part by part, whichever parts had already been applied.
"""

from __future__ import annotations

from collections.abc import Sequence

from protos import counter_pb2, counter_pb2_grpc
from reelstream.ring import ConsistentHashRing


def split_by_shard(
    correction: counter_pb2.CorrectionBatch, ring: ConsistentHashRing
) -> dict[int, counter_pb2.CorrectionBatch]:
    parts: dict[int, counter_pb2.CorrectionBatch] = {}
    for reel_id, views, likes in zip(
        correction.reel_ids, correction.view_deltas, correction.like_deltas, strict=True
    ):
        shard = ring.shard_for(reel_id)
        part = parts.get(shard)
        if part is None:
            part = parts[shard] = counter_pb2.CorrectionBatch(
                batch_id=f"{correction.batch_id}/shard-{shard}",
                reason=correction.reason,
                moves_to_removed=correction.moves_to_removed,
            )
        part.reel_ids.append(reel_id)
        part.view_deltas.append(views)
        part.like_deltas.append(likes)
    return parts


async def apply_corrections(
    correction: counter_pb2.CorrectionBatch,
    shards: Sequence[counter_pb2_grpc.CounterServiceAsyncStub],
    timeout_s: float = 10.0,
) -> int:
    """Applies every part; returns how many parts were new (not duplicates).

    Raises:
        grpc.aio.AioRpcError: a shard refused or could not be reached; retrying the same
            logical batch is safe.
    """
    ring = ConsistentHashRing.of_size(len(shards))
    applied = 0
    for shard, part in sorted(split_by_shard(correction, ring).items()):
        response = await shards[shard].ApplyCorrections(part, timeout=timeout_s)
        applied += 0 if response.duplicate else 1
    return applied
