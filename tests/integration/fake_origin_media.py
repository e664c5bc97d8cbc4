"""A stand-in for the origin's media API (GetManifest, streamed GetSegment) serving an HLS
folder made by ffmpeg, for tests of the edge's own logic. It follows the contract of
protos/origin.proto and the status mapping the origin uses: NOT_FOUND for unknown reels or
files, FAILED_PRECONDITION "... removed" for removed reels, FAILED_PRECONDITION otherwise
for reels not playable yet. It counts every call per (reel, file)."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc

from protos import origin_pb2, origin_pb2_grpc

REMOVED_REEL = 2
PROCESSING_REEL = 3
CHUNK_BYTES = 64 * 1024


def make_hls_ladder(folder: Path, seconds: int = 6) -> Path:
    """A 2-rung fMP4 HLS ladder (360x640, 240x426, audio group) with 2 s segments."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=360x640:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-filter_complex", "[0:v]split=2[v1][v2];[v1]scale=360:640[v360];[v2]scale=240:426[v240]",
        "-map", "[v360]", "-map", "[v240]", "-map", "1:a",
        "-c:v", "libx264", "-preset", "veryfast", "-threads", "2",
        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-force_key_frames", "expr:gte(t,n_forced*2)",
        "-b:v:0", "600k", "-maxrate:v:0", "650k", "-bufsize:v:0", "1200k",
        "-b:v:1", "300k", "-maxrate:v:1", "330k", "-bufsize:v:1", "600k",
        "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
        "-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
        "-master_pl_name", "master.m3u8",
        "-var_stream_map",
        "v:0,agroup:aud,name:360p v:1,agroup:aud,name:240p a:0,agroup:aud,default:yes,name:audio",
        "-hls_fmp4_init_filename", "%v_init.mp4",
        "-hls_segment_filename", "%v_%03d.m4s",
        "%v.m3u8",
    ]  # fmt: skip
    subprocess.run(command, cwd=folder, check=True, timeout=120)
    return folder


class FakeOriginMedia(origin_pb2_grpc.OriginServiceServicer):
    """Serves `folder` as every playable reel's files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: Counter[tuple[int, str]] = Counter()
        self.segment_delay_s = 0.0
        self._lock = threading.Lock()

    def count(self, reel_id: int, name: str) -> int:
        with self._lock:
            return self.calls[(reel_id, name)]

    def _file(self, reel_id: int, name: str, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls[(reel_id, name)] += 1
        if reel_id == REMOVED_REEL:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"reel {reel_id} was removed")
        if reel_id == PROCESSING_REEL:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"reel {reel_id} is processing")
        path = self.folder / name
        if reel_id >= 1000 or "/" in name or not path.is_file():
            context.abort(grpc.StatusCode.NOT_FOUND, f"no {name} for reel {reel_id}")
        return path.read_bytes()

    def GetManifest(
        self, request: origin_pb2.GetManifestRequest, context: grpc.ServicerContext
    ) -> origin_pb2.Manifest:
        body = self._file(request.reel_id, request.name, context)
        return origin_pb2.Manifest(body=body, content_type="application/vnd.apple.mpegurl")

    def GetSegment(
        self, request: origin_pb2.GetSegmentRequest, context: grpc.ServicerContext
    ) -> Iterator[origin_pb2.SegmentChunk]:
        body = self._file(request.reel_id, request.name, context)
        if self.segment_delay_s:
            time.sleep(self.segment_delay_s)
        etag = hashlib.sha256(body).hexdigest()[:32]
        for start in range(0, max(len(body), 1), CHUNK_BYTES):
            first = start == 0
            yield origin_pb2.SegmentChunk(
                data=body[start : start + CHUNK_BYTES],
                total_bytes=len(body) if first else 0,
                etag=etag if first else "",
            )


def start_fake_origin(servicer: FakeOriginMedia) -> tuple[grpc.Server, str]:
    """A threaded gRPC server on a free loopback port; returns it and its address."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0)]
    )
    origin_pb2_grpc.add_OriginServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
