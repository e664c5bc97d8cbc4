"""The schema is applied idempotently and upgrades tables created by older releases."""

from __future__ import annotations

import asyncio

from reelstream.cassandra_client import CassandraClient, CassandraSettings
from reelstream.schema import apply_schema


async def test_apply_schema_twice_and_add_columns_missing_from_an_older_table(
    keyspace: str,
) -> None:
    client = CassandraClient(CassandraSettings(("127.0.0.1",), 9042, keyspace))
    await client.connect(max_wait_s=60)
    try:
        await client.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication ="
            " {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        # reel_state as the first release created it: no `viewers` column.
        await client.execute(
            f"CREATE TABLE {keyspace}.reel_state (shard int, reel_id bigint, views bigint"
            " static, likes bigint static, views_removed bigint static, likes_removed bigint"
            " static, snapshot_id bigint static, kind int, item bigint, liked boolean,"
            " ts_ms bigint, bucket_views bigint, bucket_likes bigint,"
            " PRIMARY KEY ((shard, reel_id), kind, item))"
        )
        await apply_schema(client)
        await apply_schema(client)
        rows = await client.execute(
            "SELECT column_name, kind FROM system_schema.columns"
            " WHERE keyspace_name = %s AND table_name = 'reel_state'",
            (keyspace,),
        )
        assert ("viewers", "static") in {(r.column_name, r.kind) for r in rows}
    finally:
        await client.close()


async def test_services_starting_together_all_upgrade_the_schema(keyspace: str) -> None:
    clients = [CassandraClient(CassandraSettings(("127.0.0.1",), 9042, keyspace)) for _ in range(3)]
    for client in clients:
        await client.connect(max_wait_s=60)
    try:
        await clients[0].execute(
            f"CREATE KEYSPACE {keyspace} WITH replication ="
            " {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        await clients[0].execute(
            f"CREATE TABLE {keyspace}.reel_state (shard int, reel_id bigint, views bigint"
            " static, kind int, item bigint, PRIMARY KEY ((shard, reel_id), kind, item))"
        )
        await asyncio.gather(*(apply_schema(client) for client in clients))
        # Each one returns only once the columns it needs are live: its queries prepare.
        for client in clients:
            await client.prepare(f"SELECT age_restricted, renditions FROM {keyspace}.reels")
            await client.prepare(f"SELECT viewers FROM {keyspace}.reel_state")
    finally:
        for client in clients:
            await client.close()
