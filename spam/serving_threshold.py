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
whatever the threshold, so one replay gives every offset (`threshold_sweep`). About 4 min
on one core: run it under the machine lock.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import Family
from spam.config import SpamConfig
from spam.detection_delay import replay, threshold_sweep
from spam.model import DEFAULT_MODEL_PATH, SpamModel
from spam.training import TRAINING_FAMILIES, VALIDATION_SEED, counted_traffic, validation_specs

TARGET_PRECISION = 0.998
OFFSETS = tuple(float(x) for x in np.round(np.arange(0.0, 4.01, 0.25), 2))


def sweep(model: SpamModel) -> list[dict[str, Any]]:
    """Per offset: precision, recall and organic removals over both validation periods."""
    config = replace(SpamConfig(), threshold_offset=0.0, second_look_s=0.0)
    spam_removed = np.zeros(len(OFFSETS), np.int64)
    organic_removed = np.zeros(len(OFFSETS), np.int64)
    spam_events = 0
    for spec in validation_specs(VALIDATION_SEED, TRAINING_FAMILIES):
        traffic = counted_traffic(spec)
        with threadpool_limits(1):
            book = replay(model, traffic, config).book
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


def main() -> None:
    rows = sweep(SpamModel.load(DEFAULT_MODEL_PATH))
    print(json.dumps(rows, indent=1))
    print(f"threshold_offset for precision >= {TARGET_PRECISION}: {choose(rows)}")


if __name__ == "__main__":
    main()
