"""Client side of ApplyCorrections: splits one logical correction by owning shard.

Each shard's part gets the id `<batch_id>/shard-<n>`, so a retry of the whole logical batch
is idempotent part by part, whichever parts had already been applied.
"""

from __future__ import annotations

from protos import counter_pb2
from reelstream.ring import ConsistentHashRing
from reelstream.shard_directory import NoShardOwner, ShardDirectory


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
    shards: ShardDirectory,
    timeout_s: float = 10.0,
) -> int:
    """Applies every part at the process serving its shard; returns how many parts were
    new (not duplicates).

    Raises:
        grpc.aio.AioRpcError: a shard refused or could not be reached; retrying the same
            logical batch is safe.
        NoShardOwner: a shard has no owner right now (mid-handoff); retrying is safe.
    """
    ring = ConsistentHashRing.of_size(shards.shard_count)
    applied = 0
    for shard, part in sorted(split_by_shard(correction, ring).items()):
        try:
            response = await shards.stub(shard).ApplyCorrections(part, timeout=timeout_s)
        except Exception:
            shards.mark_stale()
            raise
        applied += 0 if response.duplicate else 1
    return applied


__all__ = ["NoShardOwner", "apply_corrections", "split_by_shard"]
