"""Cassandra persistence of one counter shard: lease, batch log, snapshots, recovery reads.

Fencing: every change of `shard_leases` is a lightweight transaction conditioned on the
owner's epoch, and a batch counts as applied only once its sequence is in the lease row's
`applied_seq` map. A fenced owner may still write batch rows (same bytes as the retry will
write), but cannot commit them, so nothing it did is visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cassandra import ConsistencyLevel
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from counter.bucket_columns import BucketHorizons
from counter.errors import NotOwner, RingMismatch
from counter.reel_records import ReelRecord
from counter.shard_state import KIND_BY_WIDTH, KIND_LIKE
from counter.unique_viewers import UniqueViewers
from reelstream.cassandra_client import CassandraClient, Row, StoreUnavailable


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Lease:
    """An owned shard: `epoch` fences every write of this owner."""

    shard: int
    owner: str
    epoch: int
    expires_ms: int


@dataclass
class LeaseRow:
    """The committed state of a shard as stored in `shard_leases`."""

    owner: str | None = None
    epoch: int = 0
    expires_ms: int = 0
    applied_seq: dict[str, int] = field(default_factory=dict)
    snapshot_id: int = 0
    # Sequences covered by each still-referenced snapshot (see schema.py).
    snapshots: dict[int, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReelRollup:
    """A reel's rows as of a snapshot: totals, changed like registers, changed buckets."""

    reel_id: int
    totals: tuple[int, int, int, int]
    likes: list[tuple[int, int, bool]]
    buckets: list[tuple[str, int, int, int]]
    viewers: bytes | None
    new_reel: bool = False
    """Not indexed in `shard_reels` yet."""

    @property
    def rows(self) -> int:
        return 1 + len(self.likes) + len(self.buckets)

    @property
    def size_bytes(self) -> int:
        """Rough size on the wire: the sketch dominates, rows are a few dozen bytes."""
        return len(self.viewers or b"") + 48 * self.rows


# About how many bytes one multi-row write request carries (roll-ups: `group_rollups`;
# batch payloads: `CounterStore.write_batches`), far below `batch_size_fail_threshold` on
# the project's own nodes (cassandra_runtime.py).
REQUEST_BYTES = 256 << 10


def group_rollups(
    rollups: list[ReelRollup], max_reels: int, max_rows: int = 512, max_bytes: int = REQUEST_BYTES
) -> list[list[ReelRollup]]:
    """Splits rollups into write batches of at most `max_reels` reels, `max_rows` rows and
    about `max_bytes` (a reel larger than a limit goes alone), so no batch nears
    Cassandra's batch size limits and a hot reel's likes do not delay cold reels."""
    groups: list[list[ReelRollup]] = []
    current: list[ReelRollup] = []
    rows = size = 0
    for rollup in rollups:
        too_big = (
            len(current) >= max_reels
            or rows + rollup.rows > max_rows
            or size + rollup.size_bytes > max_bytes
        )
        if current and too_big:
            groups.append(current)
            current, rows, size = [], 0, 0
        current.append(rollup)
        rows += rollup.rows
        size += rollup.size_bytes
    if current:
        groups.append(current)
    return groups


@dataclass
class StoredReel:
    """A reel's partition as the last snapshot left it."""

    reel_id: int
    snapshot_id: int
    record: ReelRecord


class CounterStore:
    """All CQL of the counter tier, prepared once per process."""

    def __init__(self, client: CassandraClient, shard: int) -> None:
        self._client = client
        self._shard = shard
        self._prepared: dict[str, PreparedStatement] = {}

    @property
    def shard(self) -> int:
        """The logical shard whose rows this store reads and writes."""
        return self._shard

    def for_shard(self, shard: int) -> CounterStore:
        """The same store for another shard, sharing the prepared statements (every
        statement takes the shard as a parameter)."""
        other = CounterStore(self._client, shard)
        other._prepared = self._prepared
        return other

    async def prepare(self) -> None:
        ks = self._client.keyspace
        statements = {
            "record_setting": f"INSERT INTO {ks}.ring_settings (name, value) VALUES (?, ?)"
            f" IF NOT EXISTS",
            "read_lease": f"SELECT owner, epoch, lease_expires_ms, applied_seq, snapshot_id,"
            f" snapshots FROM {ks}.shard_leases WHERE shard = ?",
            "create_lease": f"INSERT INTO {ks}.shard_leases (shard, owner, epoch,"
            f" lease_expires_ms, snapshot_id) VALUES (?, ?, ?, ?, 0) IF NOT EXISTS",
            "take_lease": f"UPDATE {ks}.shard_leases SET owner = ?, epoch = ?,"
            f" lease_expires_ms = ? WHERE shard = ? IF epoch = ?",
            "renew_lease": f"UPDATE {ks}.shard_leases SET lease_expires_ms = ?"
            f" WHERE shard = ? IF epoch = ?",
            "release_lease": f"UPDATE {ks}.shard_leases SET lease_expires_ms = 0"
            f" WHERE shard = ? IF epoch = ?",
            "commit": f"UPDATE {ks}.shard_leases SET applied_seq = applied_seq + ?,"
            f" lease_expires_ms = ? WHERE shard = ? IF epoch = ?",
            "write_batch": f"INSERT INTO {ks}.shard_batches (shard, edge_id, seq, payload)"
            f" VALUES (?, ?, ?, ?)",
            "read_batches": f"SELECT seq, payload FROM {ks}.shard_batches"
            f" WHERE shard = ? AND edge_id = ? AND seq > ? AND seq <= ?",
            "trim_batches": f"DELETE FROM {ks}.shard_batches"
            f" WHERE shard = ? AND edge_id = ? AND seq <= ?",
            "begin_snapshot": f"UPDATE {ks}.shard_leases SET snapshots = snapshots + ?"
            f" WHERE shard = ? IF epoch = ?",
            "finish_snapshot": f"UPDATE {ks}.shard_leases SET snapshot_id = ?,"
            f" snapshots = ? WHERE shard = ? IF epoch = ?",
            "index_reel": f"INSERT INTO {ks}.shard_reels (shard, reel_id) VALUES (?, ?)",
            "list_reels": f"SELECT reel_id FROM {ks}.shard_reels WHERE shard = ?",
            "write_totals": f"INSERT INTO {ks}.reel_state (shard, reel_id, views, likes,"
            f" views_removed, likes_removed, snapshot_id, viewers)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "write_like": f"INSERT INTO {ks}.reel_state (shard, reel_id, kind, item, liked,"
            f" ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
            "write_bucket": f"INSERT INTO {ks}.reel_state (shard, reel_id, kind, item,"
            f" bucket_views, bucket_likes) VALUES (?, ?, ?, ?, ?, ?)",
            "read_reel": f"SELECT views, likes, views_removed, likes_removed, snapshot_id, viewers,"
            f" kind, item, liked, ts_ms, bucket_views, bucket_likes"
            f" FROM {ks}.reel_state WHERE shard = ? AND reel_id = ?",
            "read_buckets": f"SELECT item, bucket_views, bucket_likes FROM {ks}.reel_state"
            f" WHERE shard = ? AND reel_id = ? AND kind = ? AND item >= ? AND item < ?",
        }
        for name, cql in statements.items():
            prepared = await self._client.prepare(cql)
            conditional = " IF " in cql
            if conditional:
                prepared.serial_consistency_level = ConsistencyLevel.SERIAL
            # The driver must not blindly retry a compare-and-set on another host.
            prepared.is_idempotent = not conditional
            self._prepared[name] = prepared

    async def check_shard_count(self, shard_count: int) -> None:
        """Records the keyspace's logical shard count the first time, then insists on it:
        a process hashing reels into another number of shards would serve other reels'
        rows as its own and never load the rest.

        Raises:
            RingMismatch: the keyspace was written with another shard count.
        """
        rows = await self._run("record_setting", "shard_count", shard_count)
        recorded = shard_count if rows[0].applied else rows[0].value
        if recorded != shard_count:
            raise RingMismatch(
                f"keyspace {self._client.keyspace} holds {recorded} logical shards; this"
                f" process was configured with {shard_count} (set"
                f" REELSTREAM_COUNTER_SHARD_COUNT={recorded}, or use a fresh keyspace)"
            )

    async def _run(self, name: str, *params: object) -> list[Row]:
        return await self._client.execute(self._prepared[name], params)

    async def read_lease(self) -> LeaseRow:
        """Reads the lease row with SERIAL consistency (sees any in-progress LWT)."""
        statement = self._prepared["read_lease"].bind((self._shard,))
        statement.consistency_level = ConsistencyLevel.SERIAL
        rows = await self._client.execute(statement)
        if not rows:
            return LeaseRow()
        row = rows[0]
        return LeaseRow(
            owner=row.owner,
            epoch=row.epoch or 0,
            expires_ms=row.lease_expires_ms or 0,
            applied_seq=dict(row.applied_seq or {}),
            snapshot_id=row.snapshot_id or 0,
            snapshots={k: dict(v) for k, v in (row.snapshots or {}).items()},
        )

    async def try_take_lease(self, owner: str, ttl_ms: int) -> Lease | None:
        """Takes the lease if it is free or expired, with the next epoch; None if held."""
        current = await self.read_lease()
        expires = now_ms() + ttl_ms
        if current.owner is None:
            rows = await self._run("create_lease", self._shard, owner, 1, expires)
            return Lease(self._shard, owner, 1, expires) if rows[0].applied else None
        if current.expires_ms > now_ms() and current.owner != owner:
            return None
        epoch = current.epoch + 1
        rows = await self._run("take_lease", owner, epoch, expires, self._shard, current.epoch)
        return Lease(self._shard, owner, epoch, expires) if rows[0].applied else None

    async def renew(self, lease: Lease, ttl_ms: int) -> Lease:
        expires = now_ms() + ttl_ms
        rows = await self._run("renew_lease", expires, self._shard, lease.epoch)
        if not rows[0].applied:
            raise NotOwner(f"shard {self._shard}: lease epoch {lease.epoch} was superseded")
        return Lease(lease.shard, lease.owner, lease.epoch, expires)

    async def release(self, lease: Lease) -> None:
        await self._run("release_lease", self._shard, lease.epoch)

    async def write_batches(self, batches: Sequence[tuple[str, int, bytes]]) -> None:
        """Writes (edge id, seq, payload) rows, several per request: one unlogged batch of
        up to `REQUEST_BYTES` (a larger payload goes alone). Cassandra's CPU
        follows its requests more than their bytes: on the benchmark's node (ad hoc, 48
        payloads of 40 KB a second) it spent 0.53-0.66 cores on one payload per request,
        0.41-0.51 on two and 0.24-0.25 on four. Each row is written whole or not at all,
        as with one request per row; the group's commit waits for all of them. Payloads
        are stored as given (the shard owner compresses them: counter/stored_payloads.py)."""
        requests: list[list[tuple[str, int, bytes]]] = [[]]
        size = 0
        for entry in batches:
            if requests[-1] and size + len(entry[2]) > REQUEST_BYTES:
                requests.append([])
                size = 0
            requests[-1].append(entry)
            size += len(entry[2])
        await asyncio.gather(*(self._write_payloads(entries) for entries in requests if entries))

    async def _write_payloads(self, entries: list[tuple[str, int, bytes]]) -> None:
        if len(entries) == 1:
            await self._run("write_batch", self._shard, *entries[0])
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for edge_id, seq, payload in entries:
            batch.add(self._prepared["write_batch"], (self._shard, edge_id, seq, payload))
        batch.is_idempotent = True
        await self._client.execute(batch)

    async def commit(self, lease: Lease, seqs: Mapping[str, int], ttl_ms: int) -> Lease:
        """Marks batches committed (and renews the lease) if `lease` still holds.

        An LWT whose outcome is unknown (timeout) is resolved by reading the row back.

        Raises:
            NotOwner: another owner took the shard.
            StoreUnavailable: Cassandra did not answer; the batches are not committed.
        """
        expires = now_ms() + ttl_ms
        try:
            rows = await self._run("commit", dict(seqs), expires, self._shard, lease.epoch)
        except StoreUnavailable:
            current = await self.read_lease()
            if current.epoch != lease.epoch:
                raise NotOwner(f"shard {self._shard}: fenced by epoch {current.epoch}") from None
            if all(current.applied_seq.get(edge, 0) >= seq for edge, seq in seqs.items()):
                return lease
            raise
        if not rows[0].applied:
            raise NotOwner(f"shard {self._shard}: fenced by epoch {rows[0].epoch}")
        return Lease(lease.shard, lease.owner, lease.epoch, expires)

    async def read_batches(self, edge_id: str, after_seq: int, up_to_seq: int) -> list[Row]:
        return await self._run("read_batches", self._shard, edge_id, after_seq, up_to_seq)

    async def trim_batches(self, edge_id: str, up_to_seq: int) -> None:
        await self._run("trim_batches", self._shard, edge_id, up_to_seq)

    async def begin_snapshot(self, lease: Lease, snapshot_id: int, seqs: Mapping[str, int]) -> None:
        """Registers the sequences a snapshot covers before any of its rows is written."""
        rows = await self._run(
            "begin_snapshot", {snapshot_id: dict(seqs)}, self._shard, lease.epoch
        )
        if not rows[0].applied:
            raise NotOwner(f"shard {self._shard}: fenced during snapshot")

    async def finish_snapshot(
        self, lease: Lease, snapshot_id: int, seqs: Mapping[str, int]
    ) -> None:
        """Marks a snapshot complete; older snapshots are no longer referenced by any row."""
        rows = await self._run(
            "finish_snapshot", snapshot_id, {snapshot_id: dict(seqs)}, self._shard, lease.epoch
        )
        if not rows[0].applied:
            raise NotOwner(f"shard {self._shard}: fenced during snapshot")

    async def index_reels(self, reel_ids: list[int]) -> None:
        """Indexes reels about to be written for the first time, so a reel row never
        exists without its index entry. One single-partition batch (the shard's index
        partition): one mutation for the whole chunk, where a statement per reel cost
        Cassandra a commitlog-synced mutation each."""
        if not reel_ids:
            return
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for reel_id in reel_ids:
            batch.add(self._prepared["index_reel"], (self._shard, reel_id))
        batch.is_idempotent = True
        await self._client.execute(batch)

    async def write_reels(self, snapshot_id: int, rollups: list[ReelRollup]) -> None:
        """Writes several reels' snapshots as one unlogged batch (`group_rollups` sizes
        it). Cassandra applies a batch's rows of one partition as one mutation, so each
        reel is still written atomically and in isolation; one request for many cold
        reels cost the counter ~4x less CPU per reel and Cassandra ~2-3x less than a
        request per reel (docs/benchmarks.md, counter roll-ups). Reels written for the
        first time must be indexed first (`index_reels`).

        A rollup's `viewers` None leaves the stored sketch as it is (UNSET, not a null
        tombstone).
        """
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for rollup in rollups:
            reel_id = rollup.reel_id
            viewers = UNSET_VALUE if rollup.viewers is None else rollup.viewers
            batch.add(
                self._prepared["write_totals"],
                (self._shard, reel_id, *rollup.totals, snapshot_id, viewers),
            )
            for user_id, ts_ms, liked in rollup.likes:
                batch.add(
                    self._prepared["write_like"],
                    (self._shard, reel_id, KIND_LIKE, user_id, liked, ts_ms),
                )
            for width, start_ms, views, like_count in rollup.buckets:
                batch.add(
                    self._prepared["write_bucket"],
                    (self._shard, reel_id, KIND_BY_WIDTH[width], start_ms, views, like_count),
                )
        batch.is_idempotent = True
        await self._client.execute(batch)

    async def list_reels(self) -> list[int]:
        return [row.reel_id for row in await self._run("list_reels", self._shard)]

    async def read_buckets(
        self, reel_id: int, width: str, from_ms: int, to_ms: int
    ) -> dict[int, list[int]]:
        """Stored [views, likes] of the reel's `width` buckets starting in [from_ms, to_ms)."""
        rows = await self._run(
            "read_buckets", self._shard, reel_id, KIND_BY_WIDTH[width], from_ms, to_ms
        )
        return {row.item: [row.bucket_views or 0, row.bucket_likes or 0] for row in rows}

    async def read_reel(
        self, reel_id: int, horizons: BucketHorizons | None = None
    ) -> StoredReel | None:
        """The reel as stored; buckets older than `horizons` stay in Cassandra."""
        rows = await self._run("read_reel", self._shard, reel_id)
        if not rows:
            return None
        first = rows[0]
        record = ReelRecord(
            views=first.views or 0,
            likes=first.likes or 0,
            views_removed=first.views_removed or 0,
            likes_removed=first.likes_removed or 0,
            viewers=UniqueViewers.from_bytes(first.viewers or b""),
        )
        width_by_kind = {kind: width for width, kind in KIND_BY_WIDTH.items()}
        for row in rows:
            if row.kind is None:
                continue
            if row.kind == KIND_LIKE:
                record.like_states[row.item] = (row.ts_ms, bool(row.liked))
            elif row.kind in width_by_kind:
                width = width_by_kind[row.kind]
                if horizons is not None and row.item < horizons.get(width, row.item):
                    continue
                record.buckets[(width, row.item)] = (row.bucket_views or 0, row.bucket_likes or 0)
        return StoredReel(reel_id, first.snapshot_id or 0, record)

    async def read_reels(
        self,
        reel_ids: list[int],
        horizons: BucketHorizons | None = None,
        concurrency: int = 64,
    ) -> list[StoredReel]:
        limit = asyncio.Semaphore(concurrency)

        async def one(reel_id: int) -> StoredReel | None:
            async with limit:
                return await self.read_reel(reel_id, horizons)

        loaded = await asyncio.gather(*(one(reel_id) for reel_id in reel_ids))
        return [reel for reel in loaded if reel is not None]
