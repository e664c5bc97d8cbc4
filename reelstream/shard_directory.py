"""Client side of the counter tier's shard map: which process serves each logical shard.

Callers route a key to its logical shard on the ring, then ask the directory for the stub
of the process that holds that shard's lease now. The map comes from any counter process
(GetShardMap; the seed addresses first, then every member seen); it is refreshed on a
timer and as soon as a caller reports a refused or failed call (`mark_stale`), because
that is how a moved shard shows itself. One channel per counter process, opened once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc import aio

from protos import counter_pb2, counter_pb2_grpc
from reelstream.channels import open_channel

logger = logging.getLogger(__name__)

_APPLY_BATCH = "/reelstream.v1.CounterService/ApplyBatch"
SerializedApply = aio.UnaryUnaryMultiCallable[bytes, counter_pb2.ApplyBatchResponse]
# A refused call triggers a refresh, but not more often than this.
MIN_REFRESH_GAP_S = 0.05


class NoShardOwner(Exception):
    """No live process serves the shard right now (e.g. mid-handoff); retry shortly."""


class ShardMapMismatch(Exception):
    """The counters use another number of logical shards than this process."""


class _Peer:
    """One counter process: its channel, a stub, and ApplyBatch taking serialised bytes."""

    def __init__(self, address: str) -> None:
        self.channel = open_channel(address)
        self.stub = counter_pb2_grpc.CounterServiceStub(self.channel)
        # Outbox batches are kept as the bytes journaled in Redis: parsing them only to
        # serialise them again would cost a protobuf round trip per batch.
        self.apply_serialized: SerializedApply = self.channel.unary_unary(
            _APPLY_BATCH,
            request_serializer=None,
            response_deserializer=counter_pb2.ApplyBatchResponse.FromString,
        )


class ShardDirectory:
    """Logical shard -> the counter process serving it, kept current."""

    def __init__(
        self,
        seeds: Sequence[str],
        shard_count: int,
        refresh_interval_s: float = 1.0,
        rpc_timeout_s: float = 2.0,
    ) -> None:
        self._seeds = tuple(seeds)
        self.shard_count = shard_count
        self._interval_s = refresh_interval_s
        self._timeout_s = rpc_timeout_s
        self._peers: dict[str, _Peer] = {}
        self.owners: dict[int, str] = {}
        self.shard_map: counter_pb2.ShardMap | None = None
        self._stale = asyncio.Event()
        self._changed = asyncio.Condition()

    def _peer(self, address: str) -> _Peer:
        peer = self._peers.get(address)
        if peer is None:
            peer = self._peers[address] = _Peer(address)
        return peer

    def address(self, shard: int) -> str:
        """The address serving `shard`.

        Raises:
            NoShardOwner: none known now (the directory refreshes itself).
        """
        address = self.owners.get(shard)
        if not address:
            self.mark_stale()
            raise NoShardOwner(f"no counter process serves shard {shard} right now")
        return address

    def stub(self, shard: int) -> counter_pb2_grpc.CounterServiceAsyncStub:
        return self._peer(self.address(shard)).stub

    def apply_serialized(self, shard: int) -> SerializedApply:
        return self._peer(self.address(shard)).apply_serialized

    def mark_stale(self) -> None:
        """A call was refused or failed: re-read the map soon."""
        self._stale.set()

    async def refresh(self) -> bool:
        """Reads the map from the first counter process that answers; False if none did.

        Raises:
            ShardMapMismatch: the counters' shard count differs from ours (a config error:
                routing would send keys to the wrong shards).
        """
        known = [m.address for m in self.shard_map.members] if self.shard_map else []
        for address in dict.fromkeys([*self._seeds, *known, *self.owners.values()]):
            try:
                shard_map = await self._peer(address).stub.GetShardMap(
                    counter_pb2.GetShardMapRequest(), timeout=self._timeout_s
                )
            except aio.AioRpcError:
                continue
            if shard_map.shard_count != self.shard_count:
                raise ShardMapMismatch(
                    f"counters at {address} use {shard_map.shard_count} logical shards,"
                    f" this process {self.shard_count}: set the same shard_count everywhere"
                )
            owners = {o.shard: o.address for o in shard_map.owners if o.address}
            if owners != self.owners:
                logger.info(
                    "shard map changed",
                    extra={
                        "fields": {
                            "owners": " ".join(f"{s}={a}" for s, a in sorted(owners.items()))
                        }
                    },
                )
                self.owners = owners
                async with self._changed:
                    self._changed.notify_all()
            self.shard_map = shard_map
            return True
        return False

    async def wait_changed(self, timeout_s: float) -> None:
        """Sleeps up to `timeout_s`, less if the map changes meanwhile (a retry after a
        refused call then goes to the new owner at once)."""
        # asyncio.timeout in this task, not wait_for (see CounterShard.apply).
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait()

    async def run(self) -> None:
        """Refreshes every `refresh_interval_s`, and soon after `mark_stale`."""
        while True:
            try:
                if not await self.refresh():
                    logger.warning(
                        "no counter process answered GetShardMap",
                        extra={"fields": {"seeds": ",".join(self._seeds)}},
                    )
            except ShardMapMismatch as exc:
                logger.error("shard map refused", extra={"fields": {"error": exc}})
                self.owners = {}
            self._stale.clear()
            try:
                await asyncio.wait_for(self._stale.wait(), self._interval_s)
            except TimeoutError:
                continue
            await asyncio.sleep(MIN_REFRESH_GAP_S)

    async def close(self) -> None:
        for peer in self._peers.values():
            await peer.channel.close()
        self._peers.clear()
