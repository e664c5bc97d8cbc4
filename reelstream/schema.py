"""The CQL schema of keyspace `reelstream`, applied idempotently at service start-up.

Counter totals are plain bigint columns written as absolute values by the single fenced
owner of a shard (never Cassandra counter columns, which cannot be retried safely).
"""

from __future__ import annotations

import asyncio
import logging

from reelstream.cassandra_client import CassandraClient, StoreUnavailable

logger = logging.getLogger(__name__)

# Live processes of every tier (heartbeat rows, TTL'd; reelstream/service_registry.py):
# routers and `make status` discover members here, counters compute their shard
# assignment from the counter rows, whose `owner` (the lease owner id) maps a lease to
# an address.
SERVICE_MEMBERS_TABLE = """CREATE TABLE IF NOT EXISTS {ks}.service_members (
    kind text,
    member text,
    grpc_address text,
    http_address text,
    metrics_address text,
    state text,
    owner text,
    expires_ms bigint,
    PRIMARY KEY (kind, member)
)"""

TABLES: tuple[str, ...] = (
    # One row per counter shard: who owns it (lease + fencing epoch), per edge the highest
    # batch sequence whose payload is committed, the last complete snapshot and the batch
    # sequences every still-referenced snapshot covers (the complete one plus any that an
    # owner began and did not finish). Updated only by LWT conditioned on `epoch`.
    """CREATE TABLE IF NOT EXISTS {ks}.shard_leases (
        shard int PRIMARY KEY,
        owner text,
        epoch bigint,
        lease_expires_ms bigint,
        applied_seq map<text, bigint>,
        snapshot_id bigint,
        snapshots map<bigint, frozen<map<text, bigint>>>
    )""",
    SERVICE_MEMBERS_TABLE,
    # Settings fixed for the life of the keyspace, recorded by the first counter (LWT):
    # `shard_count`, the number of logical shards every reel was hashed into.
    """CREATE TABLE IF NOT EXISTS {ks}.ring_settings (
        name text PRIMARY KEY,
        value bigint
    )""",
    # The applied batches themselves (idempotent: keyed by their id, same bytes on retry).
    """CREATE TABLE IF NOT EXISTS {ks}.shard_batches (
        shard int,
        edge_id text,
        seq bigint,
        payload blob,
        PRIMARY KEY ((shard, edge_id), seq)
    )""",
    # Roll-up of applied batches: one partition per reel holding its absolute totals (static
    # columns, with the snapshot that wrote them) and its like registers and time buckets
    # (clustering rows: kind 0 = like of user `item`, 1/2/3 = minute/hour/day bucket starting
    # at `item` ms). One partition per reel makes each snapshot write of a reel atomic.
    """CREATE TABLE IF NOT EXISTS {ks}.reel_state (
        shard int,
        reel_id bigint,
        views bigint static,
        likes bigint static,
        views_removed bigint static,
        likes_removed bigint static,
        viewers blob static,
        snapshot_id bigint static,
        kind int,
        item bigint,
        liked boolean,
        ts_ms bigint,
        bucket_views bigint,
        bucket_likes bigint,
        PRIMARY KEY ((shard, reel_id), kind, item)
    )""",
    # Which reels a shard has snapshotted, so a new owner can load them all.
    """CREATE TABLE IF NOT EXISTS {ks}.shard_reels (
        shard int,
        reel_id bigint,
        PRIMARY KEY (shard, reel_id)
    )""",
    # Reel metadata owned by the origin.
    """CREATE TABLE IF NOT EXISTS {ks}.reels (
        reel_id bigint PRIMARY KEY,
        creator_id bigint,
        caption text,
        hashtags list<text>,
        state text,
        progress_percent int,
        duration_ms int,
        content_hash text,
        created_ms bigint
    )""",
    # Resumable uploads of the origin: which reel an upload id fills and how big it is.
    """CREATE TABLE IF NOT EXISTS {ks}.uploads (
        upload_id text PRIMARY KEY,
        reel_id bigint,
        total_bytes bigint,
        created_ms bigint
    )""",
)


# How long start-up waits for a column another process just added to become queryable.
COLUMN_LIVE_TIMEOUT_S = 30.0
COLUMN_LIVE_POLL_S = 0.1

# Columns added after a table was first released: `CREATE TABLE IF NOT EXISTS` leaves an
# existing table alone, so start-up adds whichever of these are missing.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("reel_state", "viewers", "blob static"),
    # The origin's video path (issue 4): why a reel failed or was removed, where its media
    # folder is (relative to the media root) and its renditions (JSON list).
    ("reels", "state_reason", "text"),
    ("reels", "media_key", "text"),
    ("reels", "renditions", "text"),
    # Moderation (issue 6): served only to age-verified viewers.
    ("reels", "age_restricted", "boolean"),
)


async def apply_registry_schema(client: CassandraClient) -> None:
    """Creates the keyspace and the registry table if missing: all a process that keeps
    nothing else in Cassandra (an edge) needs before it registers."""
    await client.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {client.keyspace} WITH replication = "
        f"{client.settings.replication_cql()}",
        timeout_s=60,
    )
    await client.execute(SERVICE_MEMBERS_TABLE.format(ks=client.keyspace), timeout_s=60)


async def apply_schema(client: CassandraClient) -> None:
    """Creates the keyspace and tables if missing; safe to run from every process."""
    keyspace = client.keyspace
    await client.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{client.settings.replication_cql()}",
        timeout_s=60,
    )
    for table in TABLES:
        await client.execute(table.format(ks=keyspace), timeout_s=60)
    for table_name, column, cql_type in ADDED_COLUMNS:
        rows = await client.execute(
            "SELECT column_name FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table_name),
        )
        if column not in {row.column_name for row in rows}:
            try:
                await client.execute(
                    f"ALTER TABLE {keyspace}.{table_name} ADD {column} {cql_type}", timeout_s=60
                )
            except StoreUnavailable as exc:
                # Every service applies the schema at start-up; another one may have added
                # the column between our check and our ALTER.
                if "already exists" not in str(exc):
                    raise
            logger.info("column added", extra={"fields": {"table": table_name, "column": column}})
    await _wait_until_columns_live(client, keyspace)
    logger.info("schema applied", extra={"fields": {"keyspace": keyspace}})


async def _wait_until_columns_live(
    client: CassandraClient, keyspace: str, timeout_s: float = COLUMN_LIVE_TIMEOUT_S
) -> None:
    """Returns once every added column can be queried. A column another process has just
    added shows in `system_schema` before the node's live schema has it (it writes the
    schema tables, then reloads), so a start-up that prepared its queries in that window
    failed with "Undefined column name" (seen with five services starting on a new
    keyspace)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    for table_name, column, _ in ADDED_COLUMNS:
        while True:
            try:
                await client.execute(
                    f"SELECT {column} FROM {keyspace}.{table_name} LIMIT 1", timeout_s=10
                )
                break
            except StoreUnavailable as exc:
                if "Undefined column" not in str(exc):
                    raise
                if asyncio.get_running_loop().time() >= deadline:
                    raise StoreUnavailable(
                        f"column {table_name}.{column} still not live after {timeout_s:.0f} s"
                    ) from exc
                await asyncio.sleep(COLUMN_LIVE_POLL_S)
