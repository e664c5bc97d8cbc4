"""A balanced channel over the live members of one service, kept current from the registry.

grpc Python has no resolver API to plug the registry into, so the pool re-reads the
registry every `refresh_s` and, when the set of serving members changes, opens a new
balanced channel over the new list (reelstream/channels.py) and swaps it in; the old one
is closed after `retire_grace_s`, long enough for calls already on it to finish. Between
refreshes gRPC itself keeps the pool healthy: a member whose health turns NOT_SERVING, or
whose connection breaks, leaves the round_robin rotation within milliseconds and comes
back when it is SERVING again. So the registry decides who may be in the pool; health
checks decide who is in it right now.

`seeds` (configured addresses) are used until the registry has answered with at least one
serving member, and whenever it lists none: a misconfigured or unreachable registry
degrades to static configuration instead of to no channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from grpc import aio

from reelstream.cassandra_client import StoreUnavailable
from reelstream.channels import BalancingPolicy, open_balanced_channel
from reelstream.service_registry import ServiceRegistry

logger = logging.getLogger(__name__)

StubT = TypeVar("StubT")


class NoMembers(Exception):
    """No member of the service is known (none registered and no seed configured)."""


class MemberPool:
    """The serving members of `kind`, behind one balanced channel."""

    def __init__(
        self,
        kind: str,
        policy: BalancingPolicy,
        registry: ServiceRegistry | None,
        seeds: Sequence[str] = (),
        refresh_s: float = 1.0,
        retire_grace_s: float = 30.0,
    ) -> None:
        self.kind = kind
        self._policy = policy
        self._registry = registry
        self._seeds = tuple(a for a in seeds if a)
        self._refresh_s = refresh_s
        self._retire_grace_s = retire_grace_s
        self.addresses: tuple[str, ...] = ()
        self._channel: aio.Channel | None = None
        self._stubs: dict[Callable[[aio.Channel], object], object] = {}
        self._retiring: dict[asyncio.Task[None], aio.Channel] = {}
        if self._seeds:
            self._use(self._seeds)

    @property
    def channel(self) -> aio.Channel:
        """The current balanced channel (do not keep it: it is replaced on changes).

        Raises:
            NoMembers: nothing to connect to yet.
        """
        if self._channel is None:
            raise NoMembers(f"no {self.kind} is registered and none is configured")
        return self._channel

    def stub(self, factory: Callable[[aio.Channel], StubT]) -> StubT:
        """A stub of the current channel, made once per channel.

        Raises:
            NoMembers: nothing to connect to yet.
        """
        channel = self.channel
        stub = self._stubs.get(factory)
        if stub is None:
            stub = self._stubs[factory] = factory(channel)
        return stub  # type: ignore[return-value]

    def _use(self, addresses: Sequence[str]) -> None:
        addresses = tuple(sorted(addresses))
        if addresses == self.addresses:
            return
        old = self._channel
        self._channel = open_balanced_channel(addresses, self._policy)
        self._stubs = {}
        logger.info(
            "member pool changed",
            extra={"fields": {"kind": self.kind, "members": ",".join(addresses)}},
        )
        self.addresses = addresses
        if old is not None:
            task = asyncio.create_task(self._retire(old), name=f"retire-{self.kind}-channel")
            self._retiring[task] = old
            task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _retire(self, channel: aio.Channel) -> None:
        await asyncio.sleep(self._retire_grace_s)
        await channel.close()

    async def refresh(self) -> bool:
        """Re-reads the serving members; False when the registry did not answer."""
        if self._registry is None:
            return False
        try:
            members = await self._registry.members(self.kind)
        except StoreUnavailable as exc:
            logger.debug("registry unavailable", extra={"fields": {"error": exc}})
            return False
        serving = [m.grpc_address for m in members if not m.leaving and m.grpc_address]
        if serving:
            try:
                self._use(serving)
            except ValueError as exc:  # a host name among several: misconfigured advert
                logger.error("cannot balance", extra={"fields": {"error": exc}})
        elif self._seeds:
            self._use(self._seeds)
        return True

    async def run(self) -> None:
        """Refreshes every `refresh_s` until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self._refresh_s)

    async def close(self) -> None:
        for task, channel in list(self._retiring.items()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await channel.close()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
