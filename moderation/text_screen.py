"""Caption and hashtag screening: alt-profanity-check's linear model plus word lists.

Text is normalised first (lower case, leetspeak digits and symbols mapped to letters,
repeated letters squeezed) because the model misses obfuscations like "f4ck". The block list
removes at once, the watch list holds for review; both are matched on whole normalised words.
Blocking (the model's first call loads it); runs in the analysis pool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from profanity_check import predict_prob

from moderation.signals import TEXT_BLOCKLIST, TEXT_MODEL, TEXT_WATCHLIST, Signal

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "+": "t"})  # fmt: skip
_REPEATS = re.compile(r"(.)\1{2,}")
_WORD = re.compile(r"[a-z]+")


def normalise(text: str) -> str:
    """Lower case, leetspeak undone, runs of 3+ equal characters squeezed to 2."""
    return _REPEATS.sub(r"\1\1", text.lower().translate(_LEET))


def words_of(text: str) -> set[str]:
    return set(_WORD.findall(normalise(text)))


class TextScreen:
    def __init__(self, blocklist: Iterable[str], watchlist: Iterable[str]) -> None:
        self._blocklist = {normalise(w).strip() for w in blocklist if w.strip()}
        self._watchlist = {normalise(w).strip() for w in watchlist if w.strip()}

    def warm_up(self) -> None:
        predict_prob(["warm up"])

    def screen(self, caption: str, hashtags: Sequence[str]) -> list[Signal]:
        """Signals of one reel's caption and hashtags (one batched model call)."""
        texts = [t for t in [caption, " ".join(h.lstrip("#") for h in hashtags)] if t.strip()]
        if not texts:
            return [Signal(TEXT_MODEL, 0.0, "no text")]
        normalised = [normalise(t) for t in texts]
        probabilities = predict_prob(normalised).tolist()
        worst = max(range(len(texts)), key=lambda i: probabilities[i])
        signals = [
            Signal(
                TEXT_MODEL,
                float(probabilities[worst]),
                f"abusive-text probability of {texts[worst][:80]!r}",
            )
        ]
        words = set().union(*(words_of(t) for t in texts))
        blocked = sorted(words & self._blocklist)
        if blocked:
            signals.append(Signal(TEXT_BLOCKLIST, 1.0, f"blocklisted terms: {', '.join(blocked)}"))
        watched = sorted(words & self._watchlist)
        if watched:
            signals.append(Signal(TEXT_WATCHLIST, 1.0, f"watchlisted terms: {', '.join(watched)}"))
        return signals
