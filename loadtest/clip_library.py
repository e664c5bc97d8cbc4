"""The clips a Locust process uploads, made by ffmpeg once per process and kept in memory.

Made at Locust's `init` event (`prepare`), before the process opens any gRPC channel:
Locust's gevent patch spawns ffmpeg with a plain fork(), and forking a process whose gRPC
threads are running killed a child before exec (SIGABRT) in about one spawn of five in a
load run. Clips not prepared are made on first use (one at a time per process).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from loadtest.clip_upload import ClipSpec, make_clip


class ClipLibrary:
    """The bytes of a fixed list of test clips."""

    def __init__(self, specs: Sequence[ClipSpec], prefix: str) -> None:
        if not specs:
            raise ValueError("a clip library needs at least one clip")
        self._specs = tuple(specs)
        self._prefix = prefix
        self._folder: Path | None = None
        self._clips: dict[int, bytes] = {}
        self._lock = threading.Lock()  # gevent-patched: other users run while ffmpeg does

    def __len__(self) -> int:
        return len(self._specs)

    def clip(self, index: int) -> bytes:
        """Clip `index` (modulo the library's size), made now if it was not prepared."""
        index %= len(self._specs)
        with self._lock:
            if index not in self._clips:
                if self._folder is None:
                    self._folder = Path(tempfile.mkdtemp(prefix=self._prefix))
                path = self._folder / f"clip-{index}.mp4"
                self._clips[index] = make_clip(self._specs[index], path)
            return self._clips[index]

    def prepare(self) -> None:
        """Makes every clip now."""
        for index in range(len(self._specs)):
            self.clip(index)
