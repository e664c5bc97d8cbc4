"""The moderation tables of keyspace `reelstream` (applied idempotently at start-up)."""

from __future__ import annotations

from reelstream.cassandra_client import CassandraClient

TABLES: tuple[str, ...] = (
    # Hash banks (HMA curation): a bank is enabled or not; its hashes are grouped by the
    # content they came from, so removing a content drops all its frames at once.
    """CREATE TABLE IF NOT EXISTS {ks}.mod_hash_banks (
        bank text PRIMARY KEY, enabled boolean, created_ms bigint)""",
    """CREATE TABLE IF NOT EXISTS {ks}.mod_bank_hashes (
        bank text, content_id text, kind text, frame int, hash text, quality int,
        PRIMARY KEY ((bank), content_id, kind, frame))""",
    # The hashes computed when a reel was analysed (copied into a bank when it is removed).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_reel_hashes (
        reel_id bigint, kind text, frame int, hash text, quality int,
        PRIMARY KEY (reel_id, kind, frame))""",
    # One report per reporter per reel (INSERT IF NOT EXISTS).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_reports (
        reel_id bigint, reporter_id bigint, reason text, note text, weight double,
        at_ms bigint, PRIMARY KEY (reel_id, reporter_id))""",
    """CREATE TABLE IF NOT EXISTS {ks}.mod_reputation (
        reporter_id bigint PRIMARY KEY, reputation double)""",
    # Review items; claims and decisions are lightweight transactions on the item row.
    """CREATE TABLE IF NOT EXISTS {ks}.mod_review_items (
        item_id text PRIMARY KEY, reel_id bigint, kind text, state text,
        severity double, likelihood double, reach double, signals text,
        excluded_moderator text, claimed_by text, lease_expires_ms bigint,
        decided_by text, decision text, decision_reason text, created_ms bigint,
        appeal_of text)""",
    # The open review items, in one partition that every moderation process lists and
    # claims from (a queue is at most a few thousand items; decided ones leave it).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_open_items (
        queue text, item_id text, PRIMARY KEY (queue, item_id))""",
    # At most one open review item per reel, also across processes (INSERT IF NOT EXISTS;
    # replaced by LWT when the item it names was decided).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_open_reviews (
        reel_id bigint PRIMARY KEY, item_id text)""",
    # The audit trail of a reel, in time order.
    """CREATE TABLE IF NOT EXISTS {ks}.mod_audit (
        reel_id bigint, at_ms bigint, audit_id text, actor text, action text,
        reason text, signals text, PRIMARY KEY (reel_id, at_ms, audit_id))""",
    # The latest human decision of a reel (what an appeal contests).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_reel_decisions (
        reel_id bigint PRIMARY KEY, decision_id text, decision text, decided_by text)""",
    # One appeal per decision (INSERT IF NOT EXISTS).
    """CREATE TABLE IF NOT EXISTS {ks}.mod_appeals (
        reel_id bigint, decision_id text, creator_id bigint, item_id text,
        PRIMARY KEY (reel_id, decision_id))""",
)


async def apply_moderation_schema(client: CassandraClient) -> None:
    for table in TABLES:
        await client.execute(table.format(ks=client.keyspace), timeout_s=60)
