"""Known-bad users and IP hashes, pushed to edges for their inline screen.

A user enters once `min_flagged_events` of its events were judged spam; an IP hash once
at least `min_flagged_events` of its events in one judgement were spam and at most 1% were
not (so carrier NATs shared with real viewers never enter). Reversing a verdict takes its
users out. Bounded: past `max_entries` the oldest entries leave first.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from spam.event_frame import EventFrame
from spam.windows import unique_counts

BoolArray = npt.NDArray[np.bool_]


class Blocklist:
    def __init__(self, min_flagged_events: int, max_entries: int) -> None:
        self._min_flagged = min_flagged_events
        self._max_entries = max_entries
        self._flagged_per_user: dict[int, int] = {}
        self.users: OrderedDict[int, None] = OrderedDict()
        self.ip_hashes: OrderedDict[int, None] = OrderedDict()
        self.version = 0

    def learn(self, events: EventFrame, flagged: BoolArray, newly_flagged: BoolArray) -> bool:
        """Updates from one judgement; returns whether the lists changed."""
        before = (len(self.users), len(self.ip_hashes), self.version)
        users, counts = unique_counts(events.user_ids[newly_flagged])
        for user, count in zip(users.tolist(), counts.tolist(), strict=True):
            total = self._flagged_per_user.get(user, 0) + count
            self._flagged_per_user[user] = total
            if total >= self._min_flagged and user not in self.users:
                self.users[user] = None
        known_ip = events.ip_hashes != 0
        ips, spam_counts = unique_counts(events.ip_hashes[known_ip & flagged])
        clean_ips, clean_counts = unique_counts(events.ip_hashes[known_ip & ~flagged])
        clean = dict(zip(clean_ips.tolist(), clean_counts.tolist(), strict=True))
        for ip, count in zip(ips.tolist(), spam_counts.tolist(), strict=True):
            if count >= self._min_flagged and clean.get(ip, 0) <= count // 100:
                self.ip_hashes[ip] = None
        self._bound()
        changed = (len(self.users), len(self.ip_hashes)) != before[:2]
        if changed:
            self.version += 1
        return changed

    def forgive(self, user_ids: list[int]) -> bool:
        removed = False
        for user in user_ids:
            self._flagged_per_user.pop(user, None)
            removed |= self.users.pop(user, False) is None
        if removed:
            self.version += 1
        return removed

    def _bound(self) -> None:
        while len(self.users) > self._max_entries:
            self.users.popitem(last=False)
        while len(self.ip_hashes) > self._max_entries:
            self.ip_hashes.popitem(last=False)
