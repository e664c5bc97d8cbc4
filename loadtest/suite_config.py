"""The suite's settings and shared draws, made once per Locust process (the locustfile needs
the weights when it is imported, before Locust reads its classes)."""

from __future__ import annotations

import functools
import random

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


def new_rng() -> random.Random:
    """A user's own random source: seeded from the suite seed when one is set."""
    seed = settings().seed
    return random.Random(seed + _next_user_number()) if seed else random.Random()


_user_numbers = iter(range(1, 2**62))


def _next_user_number() -> int:
    return next(_user_numbers)
