from edge.batch_builder import build_shard_batches
from protos import common_pb2
from reelstream.ring import ConsistentHashRing

VIEW, LIKE, UNLIKE = (
    common_pb2.EVENT_KIND_VIEW,
    common_pb2.EVENT_KIND_LIKE,
    common_pb2.EVENT_KIND_UNLIKE,
)


def test_a_hot_reel_becomes_one_entry_per_minute() -> None:
    entry = common_pb2.EventBatch(
        reel_ids=[5] * 1000,
        user_ids=list(range(1, 1001)),
        kinds=[VIEW] * 1000,
        client_ts_ms=[60_000 * 10 + i for i in range(1000)],
    )
    ring = ConsistentHashRing.of_size(2)
    batches = build_shard_batches([entry], ring)
    (shard_batch,) = batches.values()
    assert list(shard_batch.request.view_reel_ids) == [5]
    assert list(shard_batch.request.view_counts) == [1000]
    assert shard_batch.view_deltas[5] == 1000
    assert len(shard_batch.request.viewer_user_ids) == 1000


def test_likes_coalesce_to_the_latest_state_per_user_and_reel() -> None:
    entry = common_pb2.EventBatch(
        reel_ids=[5, 5, 5],
        user_ids=[1, 1, 2],
        kinds=[LIKE, UNLIKE, LIKE],
        client_ts_ms=[10, 20, 15],
    )
    (shard_batch,) = build_shard_batches([entry], ConsistentHashRing.of_size(1)).values()
    request = shard_batch.request
    assert list(zip(request.like_user_ids, request.like_values, strict=True)) == [
        (1, False),
        (2, True),
    ]


def test_events_go_to_the_shard_that_owns_their_reel() -> None:
    ring = ConsistentHashRing.of_size(3)
    reel_ids = list(range(1, 300))
    entry = common_pb2.EventBatch(
        reel_ids=reel_ids,
        user_ids=[1] * len(reel_ids),
        kinds=[VIEW] * len(reel_ids),
        client_ts_ms=[0] * len(reel_ids),
    )
    for shard, shard_batch in build_shard_batches([entry], ring).items():
        assert all(ring.shard_for(r) == shard for r in shard_batch.request.view_reel_ids)
