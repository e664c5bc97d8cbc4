"""Wiring of an edge node: Redis journal, shard channels, flusher, intake, gRPC servicer,
and the video side: origin media client, segment cache, prefetcher, HTTP server (HLS,
/resolve, /healthz) and peer health probes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web
from grpc import aio
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from edge.age_gate import AgeGate
from edge.config import EdgeConfig
from edge.count_cache import CountCache
from edge.event_intake import EventIntake
from edge.flusher import ShardFlusher
from edge.forwarding_pressure import ForwardingPressure
from edge.grpc_api import EdgeServicer
from edge.hls_http import HlsRoutes
from edge.http_server import EdgeHttpServer
from edge.journal import EdgeJournal
from edge.nearest_edge import LatencyMap, parse_edge_urls
from edge.origin_media import OriginMedia
from edge.peer_health import PeerHealth
from edge.prefetcher import Prefetcher
from edge.reel_directory import ReelDirectory
from edge.resolve_http import ResolveRoute
from edge.segment_cache import SegmentCache
from edge.spam_forwarder import SpamForwarder
from edge.spam_screen import ScreenLimits, SpamScreen
from protos import edge_pb2, edge_pb2_grpc
from reelstream.background import BackgroundLoops
from reelstream.channels import ORIGIN_POLICY
from reelstream.member_pool import MemberPool
from reelstream.ring import ConsistentHashRing
from reelstream.service_registry import ServiceRegistry
from reelstream.shard_directory import ShardDirectory
from reelstream.user_tokens import parse_keys

logger = logging.getLogger(__name__)


class EdgeService:
    """One edge node."""

    def __init__(self, config: EdgeConfig, registry: ServiceRegistry | None = None) -> None:
        self._config = config
        self._registry = registry
        self._origins: MemberPool | None = None
        self._ring = ConsistentHashRing.of_size(config.shard_count)
        self._loops = BackgroundLoops()
        self._work: list[asyncio.Task[None]] = []
        self._redis: Redis | None = None
        self._clients: ShardDirectory | None = None
        self.journal: EdgeJournal | None = None
        self._flusher: ShardFlusher | None = None
        self._servicer: EdgeServicer | None = None
        self._directory: ReelDirectory | None = None
        self._spam_forwarder: SpamForwarder | None = None
        self._media: OriginMedia | None = None
        self.segment_cache: SegmentCache | None = None
        self._http: EdgeHttpServer | None = None
        self._peers: PeerHealth | None = None

    def register(self, server: aio.Server) -> Sequence[str]:
        if self._servicer is None:
            raise RuntimeError("register() is called after start()")
        edge_pb2_grpc.add_EdgeServiceServicer_to_server(self._servicer, server)
        return [edge_pb2.DESCRIPTOR.services_by_name["EdgeService"].full_name]

    async def _connect_redis(self) -> Redis:
        redis: Redis = Redis.from_url(
            self._config.redis_url,
            socket_timeout=5,
            socket_connect_timeout=2,
            # No automatic retries: a command whose reply was lost may have been applied,
            # and a blind retry of RPUSH would journal a call twice. The journal instead
            # reloads its mirror from Redis after any error (see EdgeJournal).
            retry=Retry(NoBackoff(), retries=0),
        )
        delay_s = 0.5
        for attempt in range(1, 61):
            try:
                await redis.ping()
                return redis
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                logger.warning(
                    "redis unreachable, retrying",
                    extra={
                        "fields": {"url": self._config.redis_url, "attempt": attempt, "error": exc}
                    },
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
        raise RuntimeError(f"cannot reach the edge journal's Redis at {self._config.redis_url}")

    async def start(self) -> None:
        self._redis = await self._connect_redis()
        # Origin replicas come from the registry (the configured address is the seed).
        self._origins = MemberPool(
            "origin",
            ORIGIN_POLICY,
            self._registry,
            [self._config.origin_address],
            self._config.discovery_refresh_s,
        )
        self._loops.start(self._origins.run(), "origin-members")
        self._clients = ShardDirectory(
            self._config.counter_addresses,
            self._config.shard_count,
            self._config.shard_map_refresh_s,
        )
        # Runs until close(): drain() still needs owners while it delivers the outbox.
        self._loops.start(self._clients.run(), "shard-map")
        self.journal = EdgeJournal(
            self._redis,
            self._config.name,
            self._ring,
            self._config.max_journal_events,
            ForwardingPressure(self._config.max_forward_backlog_events),
        )
        await self.journal.open()
        self._flusher = ShardFlusher(
            self.journal,
            self._clients,
            self._config.flush_interval_s,
            self._config.rpc_timeout_s,
            self._config.max_in_flight_batches,
        )
        cache = CountCache(
            self.journal,
            self._clients,
            self._ring,
            self._config.count_cache_entries,
            self._config.rpc_timeout_s,
            self._config.shard_move_wait_s,
        )
        if self._config.validate_reels:
            self._directory = ReelDirectory(
                self._origins,
                self._config.reel_cache_entries,
                self._config.reel_cache_ttl_s,
                self._config.unknown_reel_ttl_s,
                self._config.rpc_timeout_s,
            )
        screen, self._spam_forwarder = self._spam_parts()
        self.segment_cache = self._start_video(self._origins)
        self._servicer = EdgeServicer(
            EventIntake(self._config, self.journal, self._directory, screen, self._spam_forwarder),
            cache,
            self._config.watch_interval_s,
            self.segment_cache,
            self._directory.forget if self._directory is not None else None,
            parse_keys(self._config.user_token_keys) if self._config.require_user_tokens else None,
        )
        self._work = [
            self._loops.start(self.journal.run_group_commit(), "group-commit"),
            self._loops.start(self._flusher.run_cutter(), "cutter"),
        ]
        self._work += [
            self._loops.start(self._flusher.run_sender(shard), f"sender-{shard}")
            for shard in self._ring.shard_ids
        ]
        # Follow streams run until close(); drain() does not wait for them.
        for shard in self._ring.shard_ids:
            self._loops.start(cache.run_subscription(shard), f"follow-{shard}")
        if self._http is not None:
            await self._http.start()

    def _start_video(self, origins: MemberPool) -> SegmentCache:
        """Builds the video side (the HTTP server starts listening at the end of start())."""
        config = self._config
        self._media = OriginMedia(origins, config.media_timeout_s, config.max_object_bytes)
        segment_cache = SegmentCache(
            self._media,
            config.segment_cache_bytes,
            config.playlist_ttl_s,
            config.playlist_stale_s,
            max_fetches=config.max_origin_fetches,
        )
        prefetcher = None
        if config.prefetch_workers > 0:
            prefetcher = Prefetcher(segment_cache, config.prefetch_queue)
            for worker in range(config.prefetch_workers):
                self._loops.start(prefetcher.run_worker(), f"prefetch-{worker}")
        edge_urls = parse_edge_urls(config.edge_http_urls)
        edge_urls.setdefault(config.name, f"http://{config.http_address}")
        self._peers = PeerHealth(
            config.name, edge_urls, config.peer_probe_interval_s, timeout_s=1.0
        )
        self._loops.start(self._peers.run(), "peer-health")
        app = web.Application()
        HlsRoutes(
            segment_cache,
            prefetcher,
            playlist_ttl_s=config.playlist_ttl_s,
            playlist_stale_s=config.playlist_stale_s,
            cold_start_bps=config.cold_start_bandwidth_bps,
            save_data_bps=config.save_data_bandwidth_bps,
            retry_after_s=config.retry_after_s,
            allow_origin=config.cors_allow_origin,
            age_gate=(
                AgeGate(self._directory, parse_keys(config.user_token_keys))
                if self._directory is not None
                else None
            ),
        ).add_to(app)
        ResolveRoute(
            LatencyMap.parse(config.region_latencies), edge_urls, self._peers.healthy
        ).add_to(app)
        self._http = EdgeHttpServer(
            app,
            config.http_address,
            reuse_port=config.http_reuse_port,
            shutdown_timeout_s=config.http_shutdown_timeout_s,
            allow_origin=config.cors_allow_origin,
        )
        return segment_cache

    def _spam_parts(self) -> tuple[SpamScreen | None, SpamForwarder | None]:
        """The inline spam screen and the forwarder to the spam service, when configured."""
        config = self._config
        screen = None
        if config.spam_screen_enabled:
            screen = SpamScreen(
                ScreenLimits(
                    config.spam_user_events_per_s,
                    config.spam_user_burst,
                    config.spam_ip_events_per_s,
                    config.spam_ip_burst,
                    config.view_dedupe_max_entries,
                )
            )
        forwarder = None
        if config.spam_address:
            forwarder = SpamForwarder(
                config.name,
                config.spam_address,
                config.spam_forward_max_events,
                config.flush_interval_s,
                config.rpc_timeout_s,
            )
            self._loops.start(forwarder.run_sender(), "spam-forwarder")
            if screen is not None:
                self._loops.start(forwarder.run_blocklist(screen.update_blocklist), "blocklist")
        return screen, forwarder

    async def drain(self, timeout_s: float) -> None:
        """Stops the HTTP server (in-flight responses finish), journals what is in flight,
        then gives the senders `timeout_s` to deliver it; anything left stays in the outbox
        and is sent after the next start."""
        if self._peers is not None:
            self._peers.stop_serving()
        if self._http is not None:
            await self._http.stop()
        if self.journal is None or self._flusher is None:
            return
        self.journal.close()
        await self._flusher.final_flush()
        await self._loops.wait(self._work, timeout_s)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.stop()  # already stopped by drain() unless start-up failed
        await self._loops.cancel_all()
        if self.segment_cache is not None:
            await self.segment_cache.close()
        if self._media is not None:
            await self._media.close()
        if self._clients is not None:
            await self._clients.close()
        if self._directory is not None:
            await self._directory.close()
        if self._spam_forwarder is not None:
            await self._spam_forwarder.close()
        if self._origins is not None:
            await self._origins.close()
        if self._redis is not None:
            await self._redis.aclose()
