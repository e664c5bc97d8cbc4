"""Configuration of the origin (env prefix REELSTREAM_ORIGIN_)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reelstream.infra.local_process import var_dir
from reelstream.registration import RegistryConfigFields
from reelstream.settings import ConfigError, load_config


@dataclass(frozen=True)
class OriginConfig(RegistryConfigFields):
    """Settings of one origin process."""

    grpc_address: str = "127.0.0.1:50071"
    """host:port of the gRPC server."""
    metrics_port: int = 9171
    """Prometheus /metrics port on 127.0.0.1 (0 disables)."""
    media_dir: str = ""
    """Root of the origin's files: staged uploads, transcoding work and the content-addressed
    media of reels. Empty means `<var dir>/media` (`$REELSTREAM_VAR_DIR`, default `var/`)."""
    log_level: str = "INFO"
    """Root log level."""

    max_upload_bytes: int = 200 * 1024 * 1024
    """Largest accepted upload (declared `total_bytes` and bytes actually sent)."""
    max_duration_s: float = 180.0
    """Longest accepted video."""
    min_duration_s: float = 0.5
    """Shortest accepted video (a single frame is an image, not a reel)."""
    min_short_side_px: int = 144
    """Smallest accepted short side of the displayed picture."""
    max_long_side_px: int = 4096
    """Largest accepted long side of the displayed picture."""
    max_aspect_ratio: float = 4.0
    """Largest accepted long side / short side."""
    max_concurrent_uploads: int = 32
    """Upload streams open at once; more get RESOURCE_EXHAUSTED."""
    min_free_bytes: int = 64 * 1024 * 1024
    """Room the media folder must keep beyond an upload's size: an upload that would leave
    less is refused (RESOURCE_EXHAUSTED) before anything is written, so the transcodes of
    accepted uploads still find space. Disk full mid-write is handled too (docs/reliability.md)."""
    storage_retry_s: float = 5.0
    """How long a transcode that ran out of disk space waits before trying again (its source
    is kept: an acknowledged upload is never dropped for lack of space)."""
    upload_ttl_s: float = 86_400.0
    """Staged uploads untouched for this long are deleted (resumable until then)."""

    ffmpeg_threads: int = 2
    """Threads of the decoder and of each encoder of one ffmpeg process (memory grows with
    threads: x264 keeps frames per thread)."""
    ffprobe_timeout_s: float = 30.0
    """Time limit of the probe of one upload (ffprobe + a short decode)."""
    transcode_timeout_s: float = 900.0
    """Time limit of one ladder transcode."""
    transcode_workers: int = 1
    """ffmpeg ladder processes running at once (each uses about `ffmpeg_threads` cores)."""
    transcode_queue_size: int = 64
    """Uploads waiting for a transcode worker; a full queue answers RESOURCE_EXHAUSTED and
    keeps the staged upload so that the client can resume (finish) it later."""
    x264_preset: str = "veryfast"
    """libx264 preset of every rung."""
    progress_write_interval_s: float = 1.0
    """How often a running transcode writes its percent to Cassandra."""

    segment_chunk_bytes: int = 256 * 1024
    """Bytes per GetSegment message."""

    moderation_address: str = ""
    """gRPC address of the moderation service (AnalyzeReel before publish); empty disables
    moderation: every transcoded reel is published."""
    moderation_timeout_s: float = 300.0
    """Deadline of one AnalyzeReel call (a reel is held for review when it keeps failing)."""

    console_moderators_file: str = ""
    """The moderator console's accounts, one `<name>:scrypt:...` line each (made by `python -m
    origin.console_passwords FILE NAME`). Empty: no console. Needs `moderation_address`."""
    console_address: str = "127.0.0.1:8070"
    """host:port of the moderator console's HTTP server (loopback: put TLS in front of it
    before exposing it)."""
    console_session_ttl_s: float = 8 * 3600.0
    """How long a console login lasts."""
    console_max_sessions: int = 1000
    """Console sessions kept at once (the oldest is logged out beyond it)."""
    console_secure_cookies: bool = False
    """Mark console cookies Secure (set it when the console is served over HTTPS)."""
    console_rpc_timeout_s: float = 30.0
    """Deadline of the console's calls to the moderation service (a removal waits for the
    purge at every edge)."""

    def media_root(self) -> Path:
        return Path(self.media_dir) if self.media_dir else var_dir() / "media"

    def validate(self) -> None:
        if self.max_upload_bytes <= 0 or self.max_duration_s <= 0:
            raise ConfigError("max_upload_bytes and max_duration_s must be positive")
        if not 0 < self.min_short_side_px <= self.max_long_side_px:
            raise ConfigError("need 0 < min_short_side_px <= max_long_side_px")
        if self.ffmpeg_threads < 1 or self.transcode_workers < 1:
            raise ConfigError("ffmpeg_threads and transcode_workers must be at least 1")
        if self.transcode_queue_size < 1 or self.max_concurrent_uploads < 1:
            raise ConfigError("transcode_queue_size and max_concurrent_uploads must be >= 1")
        if self.console_moderators_file and not self.moderation_address:
            raise ConfigError(
                "console_moderators_file needs moderation_address (the console"
                " decides through the moderation service)"
            )
        if self.console_session_ttl_s <= 0 or self.console_max_sessions < 1:
            raise ConfigError("console_session_ttl_s and console_max_sessions must be positive")
        if self.min_free_bytes < 0 or self.storage_retry_s <= 0:
            raise ConfigError("min_free_bytes must be >= 0 and storage_retry_s positive")
        if not 1024 <= self.segment_chunk_bytes <= 4 * 1024 * 1024:
            raise ConfigError("segment_chunk_bytes must be within 1 KiB..4 MiB")


def load(overrides: dict[str, object] | None = None) -> OriginConfig:
    return load_config(OriginConfig, "REELSTREAM_ORIGIN_", "origin", overrides=overrides)
