"""Verdicts in Cassandra (table `spam_verdicts`), so a restart of the spam service neither
forgets them (appeals, GetSpamReport, like pairs already removed) nor loses track of which
corrections the counter shards have applied.

Write-ahead: a verdict (or its reversal) is saved before its correction is sent, and marked
applied after the shards acknowledged it. A restart re-sends only the corrections not
marked applied; their ids (`spam:<verdict>`, `spam-reversal:<verdict>`) are idempotent at
the shards, so a correction applied just before a crash, but not yet marked, is not counted
twice. Upserts only: saving a verdict again never clears its applied marks.
"""

from __future__ import annotations

from dataclasses import dataclass

from cassandra.query import PreparedStatement

from reelstream.cassandra_client import CassandraClient
from spam.verdicts import Verdict

TABLE = """CREATE TABLE IF NOT EXISTS {ks}.spam_verdicts (
    verdict_id text PRIMARY KEY, reason text, created_ms bigint,
    reel_ids list<bigint>, view_deltas list<bigint>, like_deltas list<bigint>,
    user_ids list<bigint>, like_users list<bigint>, like_reels list<bigint>,
    reversed boolean, applied boolean, reversal_applied boolean)"""


@dataclass(frozen=True)
class StoredVerdict:
    verdict: Verdict
    applied: bool
    """The shards acknowledged the verdict's correction."""
    reversal_applied: bool
    """The shards acknowledged its reversal (meaningful when the verdict is reversed)."""


class VerdictStore:
    """The spam service's verdicts and their correction state."""

    def __init__(self, client: CassandraClient) -> None:
        self._client = client
        self._statements: dict[str, PreparedStatement] = {}

    async def prepare(self) -> None:
        """Creates the table (idempotent) and prepares the statements."""
        ks = self._client.keyspace
        await self._client.execute(TABLE.format(ks=ks), timeout_s=60)
        for name, cql in {
            "save": f"INSERT INTO {ks}.spam_verdicts (verdict_id, reason, created_ms, reel_ids,"
            " view_deltas, like_deltas, user_ids, like_users, like_reels, reversed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "applied": f"UPDATE {ks}.spam_verdicts SET applied = true WHERE verdict_id = ?",
            "reversal_applied": f"UPDATE {ks}.spam_verdicts SET reversal_applied = true"
            " WHERE verdict_id = ?",
            "all": f"SELECT verdict_id, reason, created_ms, reel_ids, view_deltas, like_deltas,"
            f" user_ids, like_users, like_reels, reversed, applied, reversal_applied"
            f" FROM {ks}.spam_verdicts",
        }.items():
            self._statements[name] = await self._client.prepare(cql)

    async def save(self, verdict: Verdict) -> None:
        """Upserts the verdict (its content and whether it is reversed).

        Raises:
            StoreUnavailable: Cassandra did not answer; saving again is safe.
        """
        await self._client.execute(
            self._statements["save"],
            (
                verdict.verdict_id,
                verdict.reason,
                verdict.created_ms,
                verdict.reel_ids,
                verdict.view_deltas,
                verdict.like_deltas,
                verdict.user_ids,
                [user for user, _ in verdict.like_pairs],
                [reel for _, reel in verdict.like_pairs],
                verdict.reversed,
            ),
        )

    async def mark_applied(self, verdict_id: str, reversal: bool) -> None:
        """Records that the shards applied the verdict's correction (or its reversal)."""
        name = "reversal_applied" if reversal else "applied"
        await self._client.execute(self._statements[name], (verdict_id,))

    async def load(self) -> list[StoredVerdict]:
        """Every verdict, oldest first."""
        rows = await self._client.execute(self._statements["all"], timeout_s=60)
        stored = [
            StoredVerdict(
                Verdict(
                    verdict_id=row.verdict_id,
                    reason=row.reason or "",
                    created_ms=row.created_ms or 0,
                    reel_ids=list(row.reel_ids or ()),
                    view_deltas=list(row.view_deltas or ()),
                    like_deltas=list(row.like_deltas or ()),
                    user_ids=list(row.user_ids or ()),
                    like_pairs=list(zip(row.like_users or (), row.like_reels or (), strict=True)),
                    reversed=bool(row.reversed),
                ),
                applied=bool(row.applied),
                reversal_applied=bool(row.reversal_applied),
            )
            for row in rows
        ]
        stored.sort(key=lambda s: (s.verdict.created_ms, s.verdict.verdict_id))
        return stored
