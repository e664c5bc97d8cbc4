"""`python -m spam.serving_threshold`: the model's threshold offset for the service's
verdicts, chosen on the validation seed's live replay.

The artifact's threshold is chosen on whole runs (`spam.training`: each event judged with
all of its run in view). The service's verdicts are final once an event settled, judged
with the hour before it and the `settle_s` after, which flags more organic events (users
early in a session, a service with little history). This replays the two validation
periods of `make train-spam` (seed 13, full size and small; never evaluated on) through
the service's rounds (`SpamConfig` defaults, offset 0) and picks the lowest offset, in
steps of 0.25, whose removals over both periods keep precision >= TARGET_PRECISION: the
value of `SpamConfig.threshold_offset`. Each event's first verdict comes in the same round
whatever the threshold, so one replay gives every offset (`threshold_sweep`), and, since a
margin does not depend on earlier flags, every `repeat_offender_flags` too: at the chosen
offset, the fewest flags whose removals keep that precision. About 4 min
on one core: run it under the machine lock.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import Family, LabelledTraffic
from spam.config import SpamConfig
from spam.detection_delay import DelayBook, repeat_offender_sweep, replay, threshold_sweep
from spam.model import DEFAULT_MODEL_PATH, SpamModel
from spam.training import TRAINING_FAMILIES, VALIDATION_SEED, counted_traffic, validation_specs

TARGET_PRECISION = 0.998
OFFSETS = tuple(float(x) for x in np.round(np.arange(0.0, 4.01, 0.25), 2))


def validation_replays(model: SpamModel) -> list[tuple[LabelledTraffic, DelayBook]]:
    """Both validation periods replayed through the service's rounds (offset 0, no
    repeat offenders, no second look)."""
    config = replace(SpamConfig(), threshold_offset=0.0, second_look_s=0.0, repeat_offender_flags=0)
    replays = []
    for spec in validation_specs(VALIDATION_SEED, TRAINING_FAMILIES):
        traffic = counted_traffic(spec)
        with threadpool_limits(1):
            replays.append((traffic, replay(model, traffic, config).book))
    return replays


def repeat_offender_rows(
    model: SpamModel, replays: list[tuple[LabelledTraffic, DelayBook]]
) -> list[dict[str, Any]]:
    """Per threshold offset and `repeat_offender_flags`: precision, recall, organic
    removals and camouflaged bots' recall over both validation periods."""
    totals: dict[tuple[float, int], dict[str, int]] = {}
    history_ms = int(SpamConfig().history_s * 1000)
    for traffic, book in replays:
        spam = traffic.family != Family.ORGANIC
        camouflaged = int((traffic.family == Family.CAMOUFLAGED).sum())
        for row in repeat_offender_sweep(book, traffic, model.threshold, history_ms, OFFSETS):
            key = (row["threshold_offset"], row["repeat_offender_flags"])
            total = totals.setdefault(
                key, {"spam": 0, "spam_removed": 0, "organic_removed": 0, "cam": 0, "cam_hit": 0}
            )
            total["spam"] += int(spam.sum())
            total["spam_removed"] += row["spam_removed"]
            total["organic_removed"] += row["organic_removed"]
            total["cam"] += camouflaged
            total["cam_hit"] += round(row["per_family_recall"].get("camouflaged", 0) * camouflaged)
    return [
        {
            "threshold_offset": offset,
            "repeat_offender_flags": flags,
            "precision": round(
                t["spam_removed"] / max(1, t["spam_removed"] + t["organic_removed"]), 5
            ),
            "recall": round(t["spam_removed"] / max(1, t["spam"]), 5),
            "organic_removed": t["organic_removed"],
            "camouflaged_recall": round(t["cam_hit"] / max(1, t["cam"]), 5),
        }
        for (offset, flags), t in totals.items()
    ]


def sweep(
    model: SpamModel, replays: list[tuple[LabelledTraffic, DelayBook]] | None = None
) -> list[dict[str, Any]]:
    """Per offset: precision, recall and organic removals over both validation periods."""
    spam_removed = np.zeros(len(OFFSETS), np.int64)
    organic_removed = np.zeros(len(OFFSETS), np.int64)
    spam_events = 0
    for traffic, book in replays if replays is not None else validation_replays(model):
        spam = traffic.family != Family.ORGANIC
        spam_events += int(spam.sum())
        rows = threshold_sweep(book, traffic.family, model.threshold, OFFSETS)
        for i, row in enumerate(rows):
            organic_removed[i] += row["organic_removed"]
            spam_removed[i] += round(row["recall"] * int(spam.sum()))
    return [
        {
            "threshold_offset": offset,
            "precision": round(int(hits) / max(1, int(hits) + int(false)), 5),
            "recall": round(int(hits) / max(1, spam_events), 5),
            "organic_removed": int(false),
        }
        for offset, hits, false in zip(OFFSETS, spam_removed, organic_removed, strict=True)
    ]


def choose(rows: list[dict[str, Any]], target: float = TARGET_PRECISION) -> float:
    """The lowest offset whose precision reaches `target` (the largest tried otherwise)."""
    for row in rows:
        if row["precision"] >= target:
            return float(row["threshold_offset"])
    return float(rows[-1]["threshold_offset"])


def choose_repeat_offender_flags(
    rows: list[dict[str, Any]], offset: float, target: float = TARGET_PRECISION
) -> int:
    """At `offset`, the fewest flags needed (1 or more) whose precision still reaches
    `target`: the most a repeat-offender rule may remove; 0 (off) when none does."""
    candidates = sorted(
        row["repeat_offender_flags"]
        for row in rows
        if row["threshold_offset"] == offset
        and row["repeat_offender_flags"] > 0
        and row["precision"] >= target
    )
    return int(candidates[0]) if candidates else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    model = SpamModel.load(args.model)
    replays = validation_replays(model)
    rows = sweep(model, replays)
    print(json.dumps(rows, indent=1))
    print(f"threshold_offset for precision >= {TARGET_PRECISION}: {choose(rows)}")
    print("repeat offenders (offset, flags needed: 0 = off):")
    offender_rows = repeat_offender_rows(model, replays)
    for row in offender_rows:
        print(json.dumps(row))
    offset = choose(rows)
    print(
        f"repeat_offender_flags at offset {offset} for precision >= {TARGET_PRECISION}:"
        f" {choose_repeat_offender_flags(offender_rows, offset)}"
    )


if __name__ == "__main__":
    main()
