"""The human side of moderation: user reports, the review queue, decisions, appeals.

- Reports: one per reporter per reel (LWT), weighted by reputation; past the escalation
  weight a review item opens, past the hide weight the reel is also hidden (IN_REVIEW,
  purged from edges) until a moderator decides.
- Queue: open items ordered by priority = severity x likelihood x reach, reach refreshed
  from the counter service when an item is claimed. A claim is an LWT lease on the item row,
  a decision an LWT conditioned on holding an unexpired lease: two moderators never decide
  the same item, even from two processes.
- Decisions: keep publishes (and restores a hidden reel), remove takes the reel down at the
  origin and every edge and banks its hashes, age-restrict keeps it published with a flag.
  Reporters' reputations move with the outcome. Everything is audited.
- Appeals: once per decision, by the reel's creator, routed to anyone but the decider.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from moderation.errors import AppealRefused, NotClaimed, UnknownItem, UnknownReel
from moderation.hash_banks import HashBanks
from moderation.policy import SEVERITY, severity_of
from moderation.reach import ReachMeter
from moderation.report_weighting import (
    ReportThresholds,
    likelihood_of,
    report_weight,
    tally,
    updated_reputation,
)
from moderation.review_priority import priority
from moderation.signals import REPORTS, Signal
from moderation.store import LastDecision, ModerationStore, ReviewItem, new_id, now_ms
from moderation.takedown import ReelStates

logger = logging.getLogger(__name__)

KEEP, REMOVE, AGE_RESTRICT = "keep", "remove", "age_restrict"
MAX_CLAIM_ATTEMPTS = 20


@dataclass(frozen=True)
class ReportOutcome:
    counted: bool
    escalated: bool
    hidden: bool


@dataclass(frozen=True)
class Claimed:
    item: ReviewItem
    priority: float
    lease_expires_ms: int


class ReviewQueue:
    def __init__(
        self,
        store: ModerationStore,
        states: ReelStates,
        banks: HashBanks,
        reach: ReachMeter,
        report_thresholds: ReportThresholds,
        removed_bank: str,
    ) -> None:
        self._store = store
        self._states = states
        self._banks = banks
        self._reach = reach
        self._thresholds = report_thresholds
        self._removed_bank = removed_bank
        self._open: dict[str, ReviewItem] = {}
        self._hidden: set[int] = set()
        self._lock = asyncio.Lock()  # opening items: at most one open review per reel

    async def load(self) -> None:
        self._open = {i.item_id: i for i in await self._store.items() if i.state == "open"}

    def open_items(self) -> list[ReviewItem]:
        return list(self._open.values())

    # --- opening items
    async def open_review(
        self, reel_id: int, signals: tuple[Signal, ...], likelihood: float, actor: str
    ) -> ReviewItem:
        """The open review item of the reel, created if there is none (signals merged)."""
        async with self._lock:
            for item in self._open.values():
                if item.reel_id == reel_id and item.kind == "review":
                    merged = replace(
                        item,
                        signals=_merge(item.signals, signals),
                        likelihood=max(item.likelihood, likelihood),
                        severity=max(item.severity, severity_of(signals)),
                    )
                    await self._store.put_item(merged)
                    self._open[item.item_id] = merged
                    return merged
            item = ReviewItem(
                item_id=new_id(), reel_id=reel_id, kind="review", state="open",
                severity=severity_of(signals), likelihood=likelihood,
                reach=await self._reach.reach(reel_id), signals=signals, excluded_moderator="",
                claimed_by="", lease_expires_ms=0, created_ms=now_ms(),
            )  # fmt: skip
            await self._store.put_item(item)
            self._open[item.item_id] = item
        await self._store.audit(reel_id, actor, "queued_for_review", item.item_id, signals)
        return item

    # --- reports
    async def report(self, reel_id: int, reporter_id: int, reason: str, note: str) -> ReportOutcome:
        """Raises:
        UnknownReel: no such reel."""
        if await self._states.catalog.get(reel_id) is None:
            raise UnknownReel(f"no reel {reel_id}")
        weight = report_weight(await self._store.reputation(reporter_id))
        counted = await self._store.add_report(reel_id, reporter_id, reason, note[:500], weight)
        if not counted:
            return ReportOutcome(False, False, reel_id in self._hidden)
        await self._store.audit(
            reel_id, f"reporter:{reporter_id}", "report", f"{reason}: {note[:200]}"
        )
        result = tally([(r, w) for _, r, w in await self._store.reports(reel_id)], self._thresholds)
        if not result.escalate:
            return ReportOutcome(True, False, False)
        signal = Signal(
            f"{REPORTS}:{result.top_reason}",
            likelihood_of(result.weight, self._thresholds),
            f"{result.reporters} reporters, weight {result.weight:.1f}, mostly {result.top_reason}",
        )
        await self.open_review(reel_id, (signal,), signal.score, "reports")
        hidden = False
        if result.hide and reel_id not in self._hidden:
            purge = await self._states.hide(reel_id, "hidden after user reports, pending review")
            self._hidden.add(reel_id)
            await self._store.audit(reel_id, "reports", "hide", purge.summary(), (signal,))
        hidden = result.hide
        return ReportOutcome(True, True, hidden)

    # --- claims and decisions
    async def claim(self, moderator: str, lease_s: float) -> Claimed | None:
        """Leases the highest-priority open item this moderator may decide; None if none."""
        now = now_ms()
        candidates = [
            i for i in self._open.values()
            if i.excluded_moderator != moderator and i.lease_expires_ms < now
        ]  # fmt: skip
        candidates.sort(key=lambda i: -priority(i.severity, i.likelihood, i.reach))
        for item in candidates[:MAX_CLAIM_ATTEMPTS]:
            expires = await self._store.claim(item.item_id, moderator, int(lease_s * 1000))
            if expires is None:
                continue  # another moderator (or process) got it first
            reach = await self._reach.reach(item.reel_id)
            if reach != item.reach:
                await self._store.set_reach(item.item_id, reach)
            claimed = replace(item, claimed_by=moderator, lease_expires_ms=expires, reach=reach)
            if item.item_id in self._open:
                self._open[item.item_id] = claimed
            await self._store.audit(item.reel_id, moderator, "claim", item.item_id)
            return Claimed(claimed, priority(item.severity, item.likelihood, reach), expires)
        return None

    async def decide(self, item_id: str, moderator: str, decision: str, reason: str) -> str:
        """Applies a moderator's decision on an item they hold; returns the audit id.

        Raises:
            UnknownItem: no such item.
            NotClaimed: the moderator holds no valid lease on it.
        """
        item = self._open.get(item_id) or await self._store.item(item_id)
        if item is None:
            raise UnknownItem(f"no review item {item_id}")
        if not await self._store.decide(item_id, moderator, decision, reason):
            raise NotClaimed(
                f"{moderator} holds no valid lease on {item_id} (claim it first; it may have"
                " expired or been decided)"
            )
        self._open.pop(item_id, None)
        detail = reason
        if decision == REMOVE:
            detail = await self._take_down(item.reel_id, reason, moderator)
        elif decision in (KEEP, AGE_RESTRICT):
            await self._states.publish(item.reel_id, f"{decision} by review: {reason}")
            self._hidden.discard(item.reel_id)
        action = f"decide_{decision}" + ("_appeal" if item.kind == "appeal" else "")
        audit_id = await self._store.audit(
            item.reel_id,
            moderator,
            action,
            f"{reason} ({detail})" if detail != reason else reason,
            item.signals,
        )
        await self._store.put_decision(item.reel_id, LastDecision(audit_id, decision, moderator))
        if item.kind == "review":
            await self._update_reporters(item.reel_id, upheld=decision != KEEP)
        return audit_id

    async def _take_down(self, reel_id: int, reason: str, actor: str) -> str:
        purge = await self._states.remove(reel_id, f"removed by review: {reason}")
        hashes = await self._store.reel_hashes(reel_id)
        banked = ""
        if hashes:
            await self._banks.add(self._removed_bank, f"reel:{reel_id}", hashes)
            banked = f"; {len(hashes)} hashes added to bank {self._removed_bank}"
        self._hidden.discard(reel_id)
        detail = purge.summary() + banked
        await self._store.audit(reel_id, actor, "takedown", detail)
        return detail

    async def _update_reporters(self, reel_id: int, upheld: bool) -> None:
        for reporter_id, _, _ in await self._store.reports(reel_id):
            current = await self._store.reputation(reporter_id)
            await self._store.set_reputation(reporter_id, updated_reputation(current, upheld))

    # --- appeals
    async def appeal(self, reel_id: int, creator_id: int, statement: str) -> str:
        """Opens an appeal item of the reel's last decision; returns its id.

        Raises:
            UnknownReel: no such reel.
            AppealRefused: not the creator, no decision, or appealed already.
        """
        reel = await self._states.catalog.get(reel_id)
        if reel is None:
            raise UnknownReel(f"no reel {reel_id}")
        if reel.creator_id != creator_id:
            raise AppealRefused(f"only the reel's creator may appeal reel {reel_id}")
        last = await self._store.last_decision(reel_id)
        if last is None:
            raise AppealRefused(f"reel {reel_id} has no moderation decision to appeal")
        item_id = new_id()
        if not await self._store.add_appeal(reel_id, last.decision_id, creator_id, item_id):
            raise AppealRefused(
                f"the decision {last.decision_id} on reel {reel_id} was appealed already"
            )
        signal = Signal(
            "appeal",
            1.0,
            f"creator appeals {last.decision} by {last.decided_by}: {statement[:300]}",
        )
        item = ReviewItem(
            item_id=item_id, reel_id=reel_id, kind="appeal", state="open",
            severity=SEVERITY["other"], likelihood=1.0, reach=1.0, signals=(signal,),
            excluded_moderator=last.decided_by, claimed_by="", lease_expires_ms=0,
            created_ms=now_ms(), appeal_of=last.decision_id,
        )  # fmt: skip
        await self._store.put_item(item)
        self._open[item_id] = item
        await self._store.audit(
            reel_id, f"creator:{creator_id}", "appeal", statement[:300], (signal,)
        )
        return item_id


def _merge(old: tuple[Signal, ...], new: tuple[Signal, ...]) -> tuple[Signal, ...]:
    names = {s.name for s in new}
    return tuple(s for s in old if s.name not in names) + new
