"""Where moderation plugs into the upload lifecycle (issue 6 provides the real reviewer).

After the ladder is published on disk, the transcoder asks the hook what to do with the reel:
publish it, hold it for human review (IN_REVIEW) or remove it. The default publishes
everything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Verdict(enum.Enum):
    PUBLISH = "publish"
    HOLD_FOR_REVIEW = "hold_for_review"
    REMOVE = "remove"


@dataclass(frozen=True)
class ModerationSubject:
    """What a reviewer can look at."""

    reel_id: int
    creator_id: int
    caption: str
    hashtags: tuple[str, ...]
    content_hash: str
    """SHA-256 of the uploaded bytes (a hash bank of removed reels matches on it)."""
    duration_s: float
    media_dir: Path
    """The reel's published media folder (playlists, segments)."""
    stills: tuple[Path, ...]
    """Poster and evenly spaced frames (JPEG), for image models and thumbnails."""
    source: Path | None = None
    """The uploaded file while it is still on disk (video hashing reads it)."""


@dataclass(frozen=True)
class ModerationDecision:
    verdict: Verdict
    reason: str = ""


class ModerationHook(Protocol):
    async def review(self, subject: ModerationSubject) -> ModerationDecision:
        """Decides the fate of a freshly transcoded reel."""
        ...


class PublishEverything:
    """The default hook until moderation exists: every transcoded reel is published."""

    async def review(self, subject: ModerationSubject) -> ModerationDecision:
        return ModerationDecision(Verdict.PUBLISH)
