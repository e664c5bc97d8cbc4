"""Moderation end to end through real processes (moderation service, origin, two edges,
Cassandra): an upload analysed by NudeNet, the text model and vPDQ/PDQ before publish;
user reports escalating it; concurrent moderators claiming; a takedown visible at every edge
within 2 s (410, events refused); a disguised re-upload caught by the hash bank while an
unrelated clip is not; an appeal routed to another moderator; the audit trail."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from protos import (
    common_pb2,
    edge_pb2_grpc,
    moderation_pb2,
    moderation_pb2_grpc,
    origin_pb2,
    origin_pb2_grpc,
)
from tests.integration.conftest import ServiceProcess, free_port
from tests.integration.moderation_clips import make_disguised_copy, make_original, make_unrelated

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CREATOR = 7
FINAL = (
    origin_pb2.REEL_STATE_PUBLISHED,
    origin_pb2.REEL_STATE_IN_REVIEW,
    origin_pb2.REEL_STATE_REMOVED,
    origin_pb2.REEL_STATE_FAILED,
)


def _upload(stub: origin_pb2_grpc.OriginServiceStub, path: Path, caption: str) -> int:
    data = path.read_bytes()

    def requests() -> Iterator[origin_pb2.UploadRequest]:
        yield origin_pb2.UploadRequest(
            metadata=origin_pb2.UploadMetadata(
                creator_id=CREATOR, caption=caption, hashtags=["#test"], total_bytes=len(data),
                filename=path.name,
            )
        )  # fmt: skip
        for offset in range(0, len(data), 64 * 1024):
            yield origin_pb2.UploadRequest(chunk=data[offset : offset + 64 * 1024], offset=offset)

    response: origin_pb2.UploadResponse = stub.Upload(requests(), timeout=60)
    return response.reel_id


def _final(stub: origin_pb2_grpc.OriginServiceStub, reel_id: int) -> origin_pb2.Reel:
    deadline = time.monotonic() + 150
    while True:
        reel: origin_pb2.Reel = stub.GetReel(origin_pb2.GetReelRequest(reel_id=reel_id), timeout=5)
        if reel.state in FINAL:
            return reel
        assert time.monotonic() < deadline, f"reel {reel_id} not done: {reel}"
        time.sleep(0.2)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def _view(reel_id: int) -> common_pb2.EventBatch:
    return common_pb2.EventBatch(
        reel_ids=[reel_id], user_ids=[42], kinds=[common_pb2.EVENT_KIND_VIEW], watch_ms=[3000],
        client_ts_ms=[int(time.time() * 1000)],
    )  # fmt: skip


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_upload_report_review_takedown_rematch_and_appeal(
    keyspace: str,
    redis_port: int,
    tmp_path: Path,
    start_service: Callable[..., ServiceProcess],
) -> None:
    moderation_address = f"127.0.0.1:{free_port()}"
    origin_address = f"127.0.0.1:{free_port()}"
    edges = [(f"127.0.0.1:{free_port()}", free_port()) for _ in range(2)]
    common = {"REELSTREAM_MODERATION_KEYSPACE": keyspace}
    start_service(
        "moderation",
        "moderation",
        {
            **common,
            "REELSTREAM_MODERATION_GRPC_ADDRESS": moderation_address,
            "REELSTREAM_MODERATION_METRICS_PORT": "0",
            # No edge list: the takedown finds both edges in the service registry.
            "REELSTREAM_MODERATION_COUNTER_ADDRESSES": "",
            "REELSTREAM_MODERATION_REPORT_ESCALATE_WEIGHT": "3",
            "REELSTREAM_MODERATION_REPORT_HIDE_WEIGHT": "10",
        },
        moderation_address,
    )
    start_service(
        "origin",
        "origin",
        {
            "REELSTREAM_ORIGIN_GRPC_ADDRESS": origin_address,
            "REELSTREAM_ORIGIN_METRICS_PORT": "0",
            "REELSTREAM_ORIGIN_KEYSPACE": keyspace,
            "REELSTREAM_ORIGIN_MEDIA_DIR": str(tmp_path / "media"),
            "REELSTREAM_ORIGIN_FFMPEG_THREADS": "1",
            "REELSTREAM_ORIGIN_X264_PRESET": "ultrafast",
            "REELSTREAM_ORIGIN_MODERATION_ADDRESS": moderation_address,
        },
        origin_address,
    )
    for index, (address, http_port) in enumerate(edges):
        start_service(
            "edge",
            f"edge-{index}",
            {
                "REELSTREAM_EDGE_NAME": f"edge-mod-{index}-{keyspace}",
                "REELSTREAM_EDGE_KEYSPACE": keyspace,
                "REELSTREAM_EDGE_GRPC_ADDRESS": address,
                "REELSTREAM_EDGE_METRICS_PORT": "0",
                "REELSTREAM_EDGE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "REELSTREAM_EDGE_COUNTER_ADDRESSES": "127.0.0.1:1",
                "REELSTREAM_EDGE_VALIDATE_REELS": "true",
                "REELSTREAM_EDGE_ORIGIN_ADDRESS": origin_address,
                "REELSTREAM_EDGE_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
            },
            address,
        )
    original = make_original(tmp_path / "original.mp4")
    copy = make_disguised_copy(original, tmp_path / "copy.mp4")
    unrelated = make_unrelated(tmp_path / "unrelated.mp4")

    with (
        grpc.insecure_channel(origin_address) as origin_channel,
        grpc.insecure_channel(moderation_address) as moderation_channel,
    ):
        origin = origin_pb2_grpc.OriginServiceStub(origin_channel)
        moderation = moderation_pb2_grpc.ModerationServiceStub(moderation_channel)

        # 1. Analysed before publish: NudeNet and the text model ran, nothing flagged.
        reel_id = _upload(origin, original, "sunset walk on the beach")
        assert _final(origin, reel_id).state == origin_pb2.REEL_STATE_PUBLISHED
        trail = moderation.GetAuditTrail(moderation_pb2.GetAuditTrailRequest(reel_id=reel_id))
        analysis = next(e for e in trail.entries if e.action.startswith("analysis_"))
        assert analysis.action == "analysis_publish"
        names = {s.name: s for s in analysis.signals}
        assert names["nudity"].reason.startswith("no exposed body parts in")
        assert 0 <= names["text_model"].score < 0.5

        # The reel plays at both edges (caches filled) and its views are accepted.
        urls = [f"http://127.0.0.1:{port}/reels/{reel_id}/master.m3u8" for _, port in edges]
        assert [_status(url) for url in urls] == [200, 200]
        edge_channels = [grpc.insecure_channel(address) for address, _ in edges]
        edge_stubs = [edge_pb2_grpc.EdgeServiceStub(c) for c in edge_channels]
        for stub in edge_stubs:
            assert stub.SendEvents(_view(reel_id), timeout=10).accepted == 1

        # 2. Reports: one per reporter counts; the third weighted report escalates.
        def report(reporter: int) -> moderation_pb2.ReportReelResponse:
            return moderation.ReportReel(  # type: ignore[no-any-return]
                moderation_pb2.ReportReelRequest(
                    reel_id=reel_id, reporter_id=reporter,
                    reason=moderation_pb2.REPORT_REASON_VIOLENCE, note="graphic",
                ),
                timeout=10,
            )  # fmt: skip

        first = report(101)
        assert (first.counted, first.escalated) == (True, False)
        assert report(101).counted is False
        assert report(102).escalated is False
        third = report(103)
        assert (third.counted, third.escalated, third.hidden) == (True, True, False)

        # 3. Four moderators claim at once: exactly one gets the item.
        def claim(moderator: str) -> moderation_pb2.ReviewItem | grpc.StatusCode:
            try:
                return moderation.ClaimReview(  # type: ignore[no-any-return]
                    moderation_pb2.ClaimReviewRequest(moderator_id=moderator, lease_seconds=60),
                    timeout=20,
                )
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(claim, ["mod-a", "mod-b", "mod-c", "mod-d"]))
        won = [
            (m, r) for m, r in zip(["mod-a", "mod-b", "mod-c", "mod-d"], results, strict=True)
            if isinstance(r, moderation_pb2.ReviewItem)
        ]  # fmt: skip
        assert len(won) == 1, results
        assert [r for r in results if not isinstance(r, moderation_pb2.ReviewItem)] == [
            grpc.StatusCode.NOT_FOUND
        ] * 3
        holder, item = won[0]
        assert item.reel_id == reel_id
        assert any(s.name == "reports:violence" for s in item.signals)
        other = next(m for m in ["mod-a", "mod-b"] if m != holder)
        decide = moderation_pb2.DecideReviewRequest(
            item_id=item.item_id, moderator_id=other, decision=moderation_pb2.DECISION_KEEP,
            reason="looks fine",
        )  # fmt: skip
        assert _code(lambda: moderation.DecideReview(decide, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )

        # 4. Takedown: visible at every edge within 2 s (410), events refused there.
        started = time.monotonic()
        moderation.DecideReview(
            moderation_pb2.DecideReviewRequest(
                item_id=item.item_id, moderator_id=holder,
                decision=moderation_pb2.DECISION_REMOVE, reason="graphic violence",
            ),
            timeout=20,
        )  # fmt: skip
        while [_status(url) for url in urls] != [410, 410]:
            assert time.monotonic() - started < 2.0, [_status(url) for url in urls]
            time.sleep(0.02)
        visible_s = time.monotonic() - started
        print(f"takedown visible at both edges after {visible_s:.3f} s")
        assert visible_s < 2.0
        for stub in edge_stubs:
            response = stub.SendEvents(_view(reel_id), timeout=10)
            assert response.accepted == 0
            assert "removed" in response.rejections[0].message
        assert _final(origin, reel_id).state == origin_pb2.REEL_STATE_REMOVED
        assert _code(lambda: moderation.DecideReview(decide, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )

        # 5. A disguised copy is caught by the bank at upload; an unrelated clip is not (its
        # threatening caption holds it for review through the text model instead).
        copy_id = _upload(origin, copy, "my new video")
        caught = _final(origin, copy_id)
        assert caught.state == origin_pb2.REEL_STATE_REMOVED, caught
        copy_trail = moderation.GetAuditTrail(moderation_pb2.GetAuditTrailRequest(reel_id=copy_id))
        copy_signals = {s.name: s for e in copy_trail.entries for s in e.signals}
        assert copy_signals["hash_match:removed_reels"].score >= 0.8
        other_id = _upload(origin, unrelated, "I will kill you")
        assert _final(origin, other_id).state == origin_pb2.REEL_STATE_IN_REVIEW
        other_trail = moderation.GetAuditTrail(
            moderation_pb2.GetAuditTrailRequest(reel_id=other_id)
        )
        other_signals = {s.name: s for e in other_trail.entries for s in e.signals}
        assert not any(name.startswith("hash_match") for name in other_signals)
        assert other_signals["text_model"].score >= 0.8

        # 6. One appeal per decision, by the creator, routed to another moderator.
        appeal = moderation_pb2.AppealRequest(reel_id=reel_id, creator_id=CREATOR, statement="art")
        wrong = moderation_pb2.AppealRequest(reel_id=reel_id, creator_id=999, statement="mine")
        assert _code(lambda: moderation.Appeal(wrong, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
        appeal_id = moderation.Appeal(appeal, timeout=10).item_id
        assert _code(lambda: moderation.Appeal(appeal, timeout=10)) == (
            grpc.StatusCode.FAILED_PRECONDITION
        )
        seen = []
        while True:  # the decider is never offered the appeal
            result = claim(holder)
            if not isinstance(result, moderation_pb2.ReviewItem):
                break
            seen.append(result.item_id)
        assert appeal_id not in seen
        appeal_item = claim(other)
        assert isinstance(appeal_item, moderation_pb2.ReviewItem)
        assert (appeal_item.item_id, appeal_item.is_appeal) == (appeal_id, True)

        # 7. The audit trail says who did what, when, why and on which signals.
        trail = moderation.GetAuditTrail(moderation_pb2.GetAuditTrailRequest(reel_id=reel_id))
        actions = [e.action for e in trail.entries]
        for expected in ("analysis_publish", "report", "queued_for_review", "claim",
                         "decide_remove", "takedown", "appeal"):  # fmt: skip
            assert expected in actions, actions
        decided = next(e for e in trail.entries if e.action == "decide_remove")
        assert decided.actor == holder
        assert "graphic violence" in decided.reason
        assert decided.at_ms > 0
        assert any(s.name == "reports:violence" for s in decided.signals)
        takedown = next(e for e in trail.entries if e.action == "takedown")
        assert "purged at 2 edges" in takedown.reason
        assert "added to bank removed_reels" in takedown.reason
        for channel in edge_channels:
            channel.close()
