"""Named hash banks (HMA's curation + matching roles): banks stored in Cassandra, one
in-memory `HashIndex` per bank rebuilt from storage at start-up and kept in step with every
add and remove made through this process."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from moderation.errors import UnknownBank
from moderation.hash_index import FrameHash, HashIndex
from moderation.store import ModerationStore


@dataclass(frozen=True)
class BankMatch:
    bank: str
    content_id: str
    matched_fraction: float
    min_distance: int


class HashBanks:
    def __init__(self, store: ModerationStore) -> None:
        self._store = store
        self._indexes: dict[str, HashIndex] = {}
        self._enabled: dict[str, bool] = {}

    async def load(self, default_banks: Sequence[str]) -> None:
        self._enabled = await self._store.banks()
        for bank in default_banks:
            if bank not in self._enabled:
                await self._store.put_bank(bank, True)
                self._enabled[bank] = True
        for bank in list(self._enabled):
            entries = await self._store.bank_hashes(bank)
            await asyncio.to_thread(self.load_index, bank, entries)

    def load_index(self, bank: str, entries: dict[str, list[FrameHash]]) -> None:
        """Replaces a bank's in-memory index (blocking; start-up and benchmarks)."""
        index = HashIndex()
        index.add_many(entries)
        self._indexes[bank] = index
        self._enabled.setdefault(bank, True)

    def sizes(self) -> dict[str, int]:
        return {bank: len(index) for bank, index in self._indexes.items()}

    async def add(self, bank: str, content_id: str, hashes: Sequence[FrameHash]) -> int:
        """Adds a content's hashes to a bank (created enabled when new)."""
        if bank not in self._enabled:
            await self._store.put_bank(bank, True)
            self._enabled[bank] = True
            self._indexes[bank] = HashIndex()
        await self._store.add_bank_hashes(bank, content_id, hashes)
        await asyncio.to_thread(self._indexes[bank].add, content_id, list(hashes))
        return len(hashes)

    async def remove(self, bank: str, content_id: str) -> int:
        """Raises:
        UnknownBank: no such bank."""
        if bank not in self._indexes:
            raise UnknownBank(f"no hash bank {bank!r}")
        await self._store.remove_bank_content(bank, content_id)
        return await asyncio.to_thread(self._indexes[bank].remove, content_id)

    def lookup(self, hashes: Sequence[FrameHash], bank: str = "") -> list[BankMatch]:
        """Matches in one bank, or in every enabled bank (blocking: call in a worker).

        Raises:
            UnknownBank: `bank` names no bank.
        """
        if bank and bank not in self._indexes:
            raise UnknownBank(f"no hash bank {bank!r}")
        banks = [bank] if bank else [b for b, on in self._enabled.items() if on]
        best: dict[tuple[str, str], BankMatch] = {}
        for name in banks:
            for match in self._indexes[name].lookup(hashes):
                key = (name, match.content_id)
                found = BankMatch(
                    name, match.content_id, match.matched_fraction, match.min_distance
                )
                if key not in best or found.matched_fraction > best[key].matched_fraction:
                    best[key] = found
        return sorted(best.values(), key=lambda m: -m.matched_fraction)
