"""The long-running loops of a service, kept in one place.

A loop that fails is a bug or an unrecoverable state: it is logged and the process asks
itself to shut down (SIGTERM, so the ordered shutdown still runs) rather than limping on
without, say, its flusher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class BackgroundLoops:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, loop: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(loop, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "background loop failed; shutting down",
                exc_info=task.exception(),
                extra={"fields": {"loop": task.get_name()}},
            )
            os.kill(os.getpid(), signal.SIGTERM)

    async def wait(self, tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
        """Waits up to `timeout_s` for `tasks` to finish by themselves."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout_s)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.remove_done_callback(self._on_done)
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
