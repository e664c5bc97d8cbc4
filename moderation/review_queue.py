"""The human side of moderation: user reports, the review queue, decisions, appeals.

- Reports: one per reporter per reel (LWT), weighted by reputation; past the escalation
  weight a review item opens, past the hide weight the reel is also hidden (IN_REVIEW,
  purged from edges) until a moderator decides.
- Queue: open items ordered by priority = severity x likelihood x reach, reach refreshed
  from the counter service when an item is claimed. The open items are listed from
  Cassandra (`mod_open_items`), not from process memory, so every moderation process sees
  the same queue; a reel has at most one open review item (`mod_open_reviews`, LWT). A
  claim is an LWT lease on the item row, a decision an LWT conditioned on holding an
  unexpired lease: two moderators never decide the same item, even from two processes.
- Decisions: keep publishes (and restores a hidden reel, lifting any age restriction),
  remove takes the reel down at the origin and every edge and banks its hashes,
  age-restrict keeps it published but flags it in the catalog and purges the edges so they
  serve it only to age-verified viewers.
  Reporters' reputations move with the outcome. Everything is audited.
- Appeals: once per decision, by the reel's creator, routed to anyone but the decider.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from moderation.errors import (
    AppealRefused,
    ClaimRefused,
    NotClaimed,
    UnknownItem,
    UnknownReel,
)
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
BIND_RETRIES = 20
BIND_RETRY_S = 0.05


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
        self._hidden: set[int] = set()
        self._lock = asyncio.Lock()  # opening items in this process, one at a time

    async def load(self) -> None:
        """Indexes open items written before the shared queue existed (idempotent)."""
        for item in await self._store.items():
            if item.state == "open":
                await self._store.add_open(item.item_id)

    async def open_items(self) -> list[ReviewItem]:
        """The open items of every process, highest priority first."""
        items = await self._store.open_items()
        items.sort(key=lambda i: (-priority(i.severity, i.likelihood, i.reach), i.created_ms))
        return items

    # --- opening items
    async def open_review(
        self, reel_id: int, signals: tuple[Signal, ...], likelihood: float, actor: str
    ) -> ReviewItem:
        """The open review item of the reel, created if there is none (signals merged).

        The reel -> item binding is an LWT, so two processes opening a review of the same reel
        at once end with one item; a merge is read-modify-write (a signal merged at the same
        instant by another process may be lost; the audit trail keeps both).
        """
        async with self._lock:
            fresh = ReviewItem(
                item_id=new_id(), reel_id=reel_id, kind="review", state="open",
                severity=severity_of(signals), likelihood=likelihood,
                reach=await self._reach.reach(reel_id), signals=signals, excluded_moderator="",
                claimed_by="", lease_expires_ms=0, created_ms=now_ms(),
            )  # fmt: skip
            item = await self._bind(fresh)
            if item is not fresh:
                merged = replace(
                    item,
                    signals=_merge(item.signals, signals),
                    likelihood=max(item.likelihood, likelihood),
                    severity=max(item.severity, severity_of(signals)),
                )
                await self._store.put_item(merged)
                return merged
        await self._store.audit(reel_id, actor, "queued_for_review", item.item_id, signals)
        return item

    async def _bind(self, fresh: ReviewItem) -> ReviewItem:
        """`fresh`, stored and queued, or the reel's open review item if it has one."""
        for _ in range(BIND_RETRIES):
            bound = await self._store.bind_reel_review(fresh.reel_id, fresh.item_id)
            if bound == fresh.item_id:
                await self._store.put_item(fresh)
                await self._store.add_open(fresh.item_id)
                return fresh
            existing = await self._store.item(bound)
            if existing is not None and existing.state == "open":
                return existing
            if existing is not None and await self._store.rebind_reel_review(
                fresh.reel_id, bound, fresh.item_id
            ):  # the bound item was decided and its binding not released (a crash)
                await self._store.put_item(fresh)
                await self._store.add_open(fresh.item_id)
                return fresh
            # bound by another process that has not written its item yet
            await asyncio.sleep(BIND_RETRY_S)
        raise TimeoutError(f"the open review of reel {fresh.reel_id} did not settle")

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
            i for i in await self.open_items()
            if i.excluded_moderator != moderator and i.lease_expires_ms < now
        ]  # fmt: skip
        for item in candidates[:MAX_CLAIM_ATTEMPTS]:
            claimed = await self._lease(item, moderator, lease_s)
            if claimed is not None:
                return claimed
        return None

    async def claim_item(self, item_id: str, moderator: str, lease_s: float) -> Claimed:
        """Leases one given item (a console button); a lease the moderator holds is kept.

        Raises:
            UnknownItem: no such open item.
            ClaimRefused: another moderator holds it, or it appeals their own decision.
        """
        item = await self._store.item(item_id)
        if item is None or item.state != "open":
            raise UnknownItem(f"no open review item {item_id} (decided already?)")
        if item.excluded_moderator == moderator:
            raise ClaimRefused(f"{item_id} appeals {moderator}'s own decision: another moderator")
        if item.claimed_by == moderator and item.lease_expires_ms > now_ms() + 5_000:
            p = priority(item.severity, item.likelihood, item.reach)
            return Claimed(item, p, item.lease_expires_ms)
        claimed = await self._lease(item, moderator, lease_s)
        if claimed is None:
            raise ClaimRefused(f"{item_id} is claimed by another moderator; try again later")
        return claimed

    async def _lease(self, item: ReviewItem, moderator: str, lease_s: float) -> Claimed | None:
        expires = await self._store.claim(item.item_id, moderator, int(lease_s * 1000))
        if expires is None:
            return None  # another moderator (or process) got it first
        reach = await self._reach.reach(item.reel_id)
        if reach != item.reach:
            await self._store.set_reach(item.item_id, reach)
        claimed = replace(item, claimed_by=moderator, lease_expires_ms=expires, reach=reach)
        await self._store.audit(item.reel_id, moderator, "claim", item.item_id)
        return Claimed(claimed, priority(item.severity, item.likelihood, reach), expires)

    async def decide(self, item_id: str, moderator: str, decision: str, reason: str) -> str:
        """Applies a moderator's decision on an item they hold; returns the audit id.

        Raises:
            UnknownItem: no such item.
            NotClaimed: the moderator holds no valid lease on it.
        """
        item = await self._store.item(item_id)
        if item is None:
            raise UnknownItem(f"no review item {item_id}")
        if not await self._store.decide(item_id, moderator, decision, reason):
            raise NotClaimed(
                f"{moderator} holds no valid lease on {item_id} (claim it first; it may have"
                " expired or been decided)"
            )
        await self._store.drop_open(item_id)
        if item.kind == "review":
            await self._store.release_reel_review(item.reel_id, item_id)
        detail = reason
        if decision == REMOVE:
            detail = await self._take_down(item.reel_id, reason, moderator)
        elif decision == AGE_RESTRICT:
            purge = await self._states.age_restrict(item.reel_id, f"age-restricted: {reason}")
            detail = purge.summary()
            self._hidden.discard(item.reel_id)
        elif decision == KEEP:
            await self._states.publish(item.reel_id, f"kept by review: {reason}")
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
        await self._store.add_open(item_id)
        await self._store.audit(
            reel_id, f"creator:{creator_id}", "appeal", statement[:300], (signal,)
        )
        return item_id


def _merge(old: tuple[Signal, ...], new: tuple[Signal, ...]) -> tuple[Signal, ...]:
    names = {s.name for s in new}
    return tuple(s for s in old if s.name not in names) + new
