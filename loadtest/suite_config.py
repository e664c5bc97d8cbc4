"""The suite's settings and shared draws, made once per Locust process (the locustfile needs
the weights when it is imported, before Locust reads its classes)."""

from __future__ import annotations

import functools
import random

from loadtest.clip_library import ClipLibrary
from loadtest.clip_upload import ClipSpec
from loadtest.load_settings import LoadSettings, load
from loadtest.playable_reels import PlayableReels
from loadtest.viewer_behaviour import ReelPicker


@functools.cache
def settings() -> LoadSettings:
    return load()


@functools.cache
def reel_picker() -> ReelPicker:
    return ReelPicker(settings().reel_ids)


@functools.cache
def playable_reels() -> PlayableReels:
    """This process's reels with HLS media (configured, seeded, or published by creators)."""
    return PlayableReels(settings().media_reel_ids)


CREATOR_CLIP_VARIANTS = 3


@functools.cache
def creator_clips() -> ClipLibrary:
    """Creators' clips: 360x640, `clip_seconds` long (the origin makes 360p and 240p)."""
    seconds = settings().clip_seconds
    specs = [ClipSpec(360, 640, seconds, variant) for variant in range(CREATOR_CLIP_VARIANTS)]
    return ClipLibrary(specs, "reelstream-clips-")


@functools.cache
def seed_clips() -> ClipLibrary:
    """Media seeding's clips: 480x854 (480p, 360p and 240p rungs), `media_clip_seconds`
    long; variants from 10 up, so they never share bytes with a creator's clip."""
    seconds = settings().media_clip_seconds
    count = max(1, settings().media_seed_clips)
    specs = [ClipSpec(480, 854, seconds, 10 + index) for index in range(count)]
    return ClipLibrary(specs, "reelstream-seed-")


def new_rng() -> random.Random:
    """A user's own random source: seeded from the suite seed when one is set."""
    seed = settings().seed
    return random.Random(seed + _next_user_number()) if seed else random.Random()


_user_numbers = iter(range(1, 2**62))


def _next_user_number() -> int:
    return next(_user_numbers)
