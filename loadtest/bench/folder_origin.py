"""A media-only origin for the edge benchmark: GetManifest and streamed GetSegment serving
the files of one folder for every reel id (`<folder>/<name>`), counting each call. It
stands in for the real origin so the benchmark measures the edge, not transcoding or
Cassandra. Runs on gRPC threads inside the benchmark process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import NoReturn

import grpc

from protos import origin_pb2, origin_pb2_grpc

CHUNK_BYTES = 256 * 1024


class FolderOrigin(origin_pb2_grpc.OriginServiceServicer):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segment_delay_s = 0.0
        self._calls: Counter[tuple[int, str]] = Counter()
        self._lock = threading.Lock()

    def calls(self, reel_id: int, name: str) -> int:
        with self._lock:
            return self._calls[(reel_id, name)]

    def _read(self, reel_id: int, name: str, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self._calls[(reel_id, name)] += 1
        path = self.folder / name
        if "/" in name or not path.is_file():
            context.abort(grpc.StatusCode.NOT_FOUND, f"no {name}")
        return path.read_bytes()

    def GetManifest(
        self, request: origin_pb2.GetManifestRequest, context: grpc.ServicerContext
    ) -> origin_pb2.Manifest:
        body = self._read(request.reel_id, request.name, context)
        return origin_pb2.Manifest(body=body, content_type="application/vnd.apple.mpegurl")

    def GetSegment(
        self, request: origin_pb2.GetSegmentRequest, context: grpc.ServicerContext
    ) -> Iterator[origin_pb2.SegmentChunk]:
        body = self._read(request.reel_id, request.name, context)
        if self.segment_delay_s:
            time.sleep(self.segment_delay_s)
        for start in range(0, max(len(body), 1), CHUNK_BYTES):
            yield origin_pb2.SegmentChunk(
                data=body[start : start + CHUNK_BYTES],
                total_bytes=len(body) if start == 0 else 0,
            )

    def _unimplemented(self, context: grpc.ServicerContext) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the benchmark origin serves media only")
        raise AssertionError("unreachable")

    def Upload(
        self, request_iterator: Iterator[origin_pb2.UploadRequest], context: grpc.ServicerContext
    ) -> origin_pb2.UploadResponse:
        self._unimplemented(context)

    def GetReel(
        self, request: origin_pb2.GetReelRequest, context: grpc.ServicerContext
    ) -> origin_pb2.Reel:
        self._unimplemented(context)

    def GetReels(
        self, request: origin_pb2.GetReelsRequest, context: grpc.ServicerContext
    ) -> origin_pb2.GetReelsResponse:
        self._unimplemented(context)

    def ImportReels(
        self, request: origin_pb2.ImportReelsRequest, context: grpc.ServicerContext
    ) -> origin_pb2.ImportReelsResponse:
        self._unimplemented(context)


def serve_folder(origin: FolderOrigin) -> tuple[grpc.Server, str]:
    """Starts `origin` on a free loopback port; returns the server and its address."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)]
    )
    origin_pb2_grpc.add_OriginServiceServicer_to_server(origin, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
