"""Which counter process should own each logical shard, computed from the live members.

Every process computes the same answer from the same member list, so no coordinator is
needed: a shard goes to the highest-ranked member (rendezvous hashing of shard and member
name) that still has room under an even share, ceil(shards / members). Rendezvous ranking
keeps most shards where they were when a member joins or leaves; the cap keeps the load
even with few shards per member (plain rendezvous could give one member 4 of 8). Pure code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _rank(shard: int, member: str) -> int:
    digest = hashlib.blake2b(f"{shard}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign_shards(shard_count: int, members: Iterable[str]) -> dict[int, str]:
    """Maps every shard in [0, shard_count) to a member; empty when there is no member.

    (shard, member) pairs are taken best rank first: a pass fills every member up to the
    floor of the even share, a second places the remaining shards up to its ceiling.
    """
    names = sorted(set(members))
    if not names:
        return {}
    pairs = sorted(
        ((shard, member) for shard in range(shard_count) for member in names),
        key=lambda pair: _rank(*pair),
        reverse=True,
    )
    load = dict.fromkeys(names, 0)
    assignment: dict[int, str] = {}
    for cap in (shard_count // len(names), -(-shard_count // len(names))):
        for shard, member in pairs:
            if shard not in assignment and load[member] < cap:
                assignment[shard] = member
                load[member] += 1
    return assignment


def shards_of(assignment: dict[int, str], member: str) -> set[int]:
    """The shards `assignment` gives to `member`."""
    return {shard for shard, owner in assignment.items() if owner == member}
