"""Moderation state in Cassandra: hash banks, reel hashes, reports, reputations, review
items, decisions, appeals and the audit trail.

Plain upserts are idempotent; the three things that must happen at most once are
lightweight transactions: a report per (reel, reporter), a claim / decision of a review item
(conditioned on its state, owner and lease), and an appeal per decision.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cassandra.query import PreparedStatement

from moderation.hash_index import FrameHash
from moderation.signals import Signal, signals_from_json, signals_to_json
from reelstream.cassandra_client import CassandraClient, Row

OPEN_QUEUE = "open"
MAX_PARALLEL_READS = 32


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    reel_id: int
    kind: str
    """"review" or "appeal"."""
    state: str
    """"open" or "decided"."""
    severity: float
    likelihood: float
    reach: float
    signals: tuple[Signal, ...]
    excluded_moderator: str
    claimed_by: str
    lease_expires_ms: int
    created_ms: int
    appeal_of: str = ""


@dataclass(frozen=True)
class AuditRecord:
    audit_id: str
    reel_id: int
    at_ms: int
    actor: str
    action: str
    reason: str
    signals: tuple[Signal, ...]


@dataclass(frozen=True)
class LastDecision:
    decision_id: str
    decision: str
    decided_by: str


class ModerationStore:
    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._statements: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        ks = self._client.keyspace
        item_columns = (
            "item_id, reel_id, kind, state, severity, likelihood, reach, signals,"
            " excluded_moderator, claimed_by, lease_expires_ms, created_ms, appeal_of"
        )
        for name, cql in {
            "bank_put": f"INSERT INTO {ks}.mod_hash_banks (bank, enabled, created_ms)"
            " VALUES (?, ?, ?)",
            "banks": f"SELECT bank, enabled FROM {ks}.mod_hash_banks",
            "bank_hash_put": f"INSERT INTO {ks}.mod_bank_hashes (bank, content_id, kind, frame,"
            " hash, quality) VALUES (?, ?, ?, ?, ?, ?)",
            "bank_hashes": f"SELECT content_id, kind, frame, hash, quality"
            f" FROM {ks}.mod_bank_hashes WHERE bank = ?",
            "bank_content_delete": f"DELETE FROM {ks}.mod_bank_hashes"
            " WHERE bank = ? AND content_id = ?",
            "reel_hash_put": f"INSERT INTO {ks}.mod_reel_hashes (reel_id, kind, frame, hash,"
            " quality) VALUES (?, ?, ?, ?, ?)",
            "reel_hashes": f"SELECT kind, frame, hash, quality FROM {ks}.mod_reel_hashes"
            " WHERE reel_id = ?",
            "report_put": f"INSERT INTO {ks}.mod_reports (reel_id, reporter_id, reason, note,"
            " weight, at_ms) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            "reports": f"SELECT reporter_id, reason, weight FROM {ks}.mod_reports"
            " WHERE reel_id = ?",
            "reputation": f"SELECT reputation FROM {ks}.mod_reputation WHERE reporter_id = ?",
            "reputation_put": f"INSERT INTO {ks}.mod_reputation (reporter_id, reputation)"
            " VALUES (?, ?)",
            "item_put": f"INSERT INTO {ks}.mod_review_items ({item_columns})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "items": f"SELECT {item_columns} FROM {ks}.mod_review_items",
            "item": f"SELECT {item_columns} FROM {ks}.mod_review_items WHERE item_id = ?",
            "reach": f"UPDATE {ks}.mod_review_items SET reach = ? WHERE item_id = ?",
            "claim": f"UPDATE {ks}.mod_review_items SET claimed_by = ?, lease_expires_ms = ?"
            " WHERE item_id = ? IF state = 'open' AND lease_expires_ms < ?",
            "decide": f"UPDATE {ks}.mod_review_items SET state = 'decided', decided_by = ?,"
            " decision = ?, decision_reason = ? WHERE item_id = ?"
            " IF state = 'open' AND claimed_by = ? AND lease_expires_ms >= ?",
            "open_add": f"INSERT INTO {ks}.mod_open_items (queue, item_id) VALUES (?, ?)",
            "open_drop": f"DELETE FROM {ks}.mod_open_items WHERE queue = ? AND item_id = ?",
            "open_ids": f"SELECT item_id FROM {ks}.mod_open_items WHERE queue = ?",
            "reel_review_put": f"INSERT INTO {ks}.mod_open_reviews (reel_id, item_id)"
            " VALUES (?, ?) IF NOT EXISTS",
            "reel_review_swap": f"UPDATE {ks}.mod_open_reviews SET item_id = ?"
            " WHERE reel_id = ? IF item_id = ?",
            "reel_review_release": f"DELETE FROM {ks}.mod_open_reviews WHERE reel_id = ?"
            " IF item_id = ?",
            "audit_put": f"INSERT INTO {ks}.mod_audit (reel_id, at_ms, audit_id, actor, action,"
            " reason, signals) VALUES (?, ?, ?, ?, ?, ?, ?)",
            "audit": f"SELECT reel_id, at_ms, audit_id, actor, action, reason, signals"
            f" FROM {ks}.mod_audit WHERE reel_id = ?",
            "decision_put": f"INSERT INTO {ks}.mod_reel_decisions (reel_id, decision_id,"
            " decision, decided_by) VALUES (?, ?, ?, ?)",
            "decision": f"SELECT decision_id, decision, decided_by FROM {ks}.mod_reel_decisions"
            " WHERE reel_id = ?",
            "appeal_put": f"INSERT INTO {ks}.mod_appeals (reel_id, decision_id, creator_id,"
            " item_id) VALUES (?, ?, ?, ?) IF NOT EXISTS",
        }.items():
            statement = await self._client.prepare(cql)
            statement.is_idempotent = "IF " not in cql
            self._statements[name] = statement

    async def _run(self, name: str, *params: object) -> list[Row]:
        return await self._client.execute(self._statements[name], params)

    # --- hash banks
    async def put_bank(self, bank: str, enabled: bool) -> None:
        await self._run("bank_put", bank, enabled, now_ms())

    async def banks(self) -> dict[str, bool]:
        return {row.bank: bool(row.enabled) for row in await self._run("banks")}

    async def add_bank_hashes(
        self, bank: str, content_id: str, hashes: Sequence[FrameHash]
    ) -> None:
        for h in hashes:
            await self._run(
                "bank_hash_put", bank, content_id, h.kind, h.frame, h.hash_hex, h.quality
            )

    async def bank_hashes(self, bank: str) -> dict[str, list[FrameHash]]:
        entries: dict[str, list[FrameHash]] = {}
        for row in await self._run("bank_hashes", bank):
            entries.setdefault(row.content_id, []).append(
                FrameHash(row.kind, row.hash, row.quality, row.frame)
            )
        return entries

    async def remove_bank_content(self, bank: str, content_id: str) -> None:
        await self._run("bank_content_delete", bank, content_id)

    async def put_reel_hashes(self, reel_id: int, hashes: Sequence[FrameHash]) -> None:
        for h in hashes:
            await self._run("reel_hash_put", reel_id, h.kind, h.frame, h.hash_hex, h.quality)

    async def reel_hashes(self, reel_id: int) -> list[FrameHash]:
        return [
            FrameHash(row.kind, row.hash, row.quality, row.frame)
            for row in await self._run("reel_hashes", reel_id)
        ]

    # --- reports
    async def add_report(
        self, reel_id: int, reporter_id: int, reason: str, note: str, weight: float
    ) -> bool:
        """True when this is the reporter's first report of the reel."""
        rows = await self._run("report_put", reel_id, reporter_id, reason, note, weight, now_ms())
        return bool(rows[0].applied)

    async def reports(self, reel_id: int) -> list[tuple[int, str, float]]:
        return [
            (row.reporter_id, row.reason, float(row.weight))
            for row in await self._run("reports", reel_id)
        ]

    async def reputation(self, reporter_id: int) -> float | None:
        rows = await self._run("reputation", reporter_id)
        return float(rows[0].reputation) if rows else None

    async def set_reputation(self, reporter_id: int, reputation: float) -> None:
        await self._run("reputation_put", reporter_id, reputation)

    # --- review items
    async def put_item(self, item: ReviewItem) -> None:
        await self._run(
            "item_put", item.item_id, item.reel_id, item.kind, item.state, item.severity,
            item.likelihood, item.reach, signals_to_json(item.signals), item.excluded_moderator,
            item.claimed_by, item.lease_expires_ms, item.created_ms, item.appeal_of,
        )  # fmt: skip

    async def items(self) -> list[ReviewItem]:
        return [_item(row) for row in await self._run("items")]

    async def item(self, item_id: str) -> ReviewItem | None:
        rows = await self._run("item", item_id)
        return _item(rows[0]) if rows else None

    # --- the shared open queue
    async def add_open(self, item_id: str) -> None:
        await self._run("open_add", OPEN_QUEUE, item_id)

    async def drop_open(self, item_id: str) -> None:
        await self._run("open_drop", OPEN_QUEUE, item_id)

    async def open_items(self) -> list[ReviewItem]:
        """Every open item, read from Cassandra (what any moderation process sees)."""
        ids = [row.item_id for row in await self._run("open_ids", OPEN_QUEUE)]
        limit = asyncio.Semaphore(MAX_PARALLEL_READS)

        async def one(item_id: str) -> ReviewItem | None:
            async with limit:
                return await self.item(item_id)

        found = await asyncio.gather(*(one(i) for i in ids))
        open_items = []
        for item_id, item in zip(ids, found, strict=True):
            if item is not None and item.state == "open":
                open_items.append(item)
            else:  # decided by a process that stopped before dropping it from the queue
                await self.drop_open(item_id)
        return open_items

    async def bind_reel_review(self, reel_id: int, item_id: str) -> str:
        """Makes `item_id` the reel's open review unless it has one; the reel's item id."""
        rows = await self._run("reel_review_put", reel_id, item_id)
        return item_id if rows[0].applied else str(rows[0].item_id)

    async def rebind_reel_review(self, reel_id: int, stale_id: str, item_id: str) -> bool:
        """Replaces a decided item as the reel's open review (False: someone else did)."""
        rows = await self._run("reel_review_swap", item_id, reel_id, stale_id)
        return bool(rows[0].applied)

    async def release_reel_review(self, reel_id: int, item_id: str) -> None:
        await self._run("reel_review_release", reel_id, item_id)

    async def set_reach(self, item_id: str, reach: float) -> None:
        await self._run("reach", reach, item_id)

    async def claim(self, item_id: str, moderator: str, lease_ms: int) -> int | None:
        """Leases an open item whose lease expired; the new expiry, or None if taken."""
        now = now_ms()
        expires = now + lease_ms
        rows = await self._run("claim", moderator, expires, item_id, now)
        return expires if rows[0].applied else None

    async def decide(self, item_id: str, moderator: str, decision: str, reason: str) -> bool:
        """Closes an item the moderator holds an unexpired lease on; False otherwise."""
        rows = await self._run("decide", moderator, decision, reason, item_id, moderator, now_ms())
        return bool(rows[0].applied)

    # --- decisions, appeals, audit
    async def put_decision(self, reel_id: int, decision: LastDecision) -> None:
        await self._run(
            "decision_put", reel_id, decision.decision_id, decision.decision, decision.decided_by
        )

    async def last_decision(self, reel_id: int) -> LastDecision | None:
        rows = await self._run("decision", reel_id)
        if not rows:
            return None
        return LastDecision(rows[0].decision_id, rows[0].decision, rows[0].decided_by)

    async def add_appeal(
        self, reel_id: int, decision_id: str, creator_id: int, item_id: str
    ) -> bool:
        rows = await self._run("appeal_put", reel_id, decision_id, creator_id, item_id)
        return bool(rows[0].applied)

    async def audit(
        self, reel_id: int, actor: str, action: str, reason: str, signals: Sequence[Signal] = ()
    ) -> str:
        audit_id = new_id()
        await self._run(
            "audit_put",
            reel_id,
            now_ms(),
            audit_id,
            actor,
            action,
            reason,
            signals_to_json(signals),
        )
        return audit_id

    async def audit_trail(self, reel_id: int) -> list[AuditRecord]:
        return [
            AuditRecord(
                row.audit_id, row.reel_id, row.at_ms, row.actor, row.action, row.reason or "",
                tuple(signals_from_json(row.signals)),
            )
            for row in await self._run("audit", reel_id)
        ]  # fmt: skip


def _item(row: Row) -> ReviewItem:
    return ReviewItem(
        item_id=row.item_id,
        reel_id=row.reel_id,
        kind=row.kind,
        state=row.state,
        severity=row.severity or 0.0,
        likelihood=row.likelihood or 0.0,
        reach=row.reach or 1.0,
        signals=tuple(signals_from_json(row.signals)),
        excluded_moderator=row.excluded_moderator or "",
        claimed_by=row.claimed_by or "",
        lease_expires_ms=row.lease_expires_ms or 0,
        created_ms=row.created_ms or 0,
        appeal_of=row.appeal_of or "",
    )
