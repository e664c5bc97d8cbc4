"""`python -m spam.served_training`: a candidate model trained on what the judge sees.

The shipped model (`spam.training`) learns from every event's features over its whole
simulated run; the service judges each event once, `settle_s` after it arrived, with the
hour before it and what came in meanwhile (`spam.judge_rounds`). Here each training and
validation event gets the features the service's rounds would give it (`served_features`:
the rounds replayed in simulated time with `SpamConfig` defaults, features of the history
at the round that decides the event), the model is fitted on those and its threshold chosen
on the validation seed's served features for the same target precision. An experiment
beside the shipped artifact: it writes where `--out` says (not models/spam/), and
`python -m spam.evaluation --model <it> --leave-one-out none --out <json>` replays it.
CPU-heavy (one featurisation of a 2 h run costs about as much as its replay, ~4 min a
core; two worker processes): run it under the machine lock.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.config import SpamConfig
from spam.features import FEATURE_NAMES, extract_features
from spam.history import EventHistory
from spam.model import SpamModel
from spam.training import (
    TARGET_PRECISION,
    TRAINING_FAMILIES,
    TRAINING_SEEDS,
    VALIDATION_SEED,
    counted_traffic,
    set_threshold,
    training_spec,
    validation_specs,
)

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def served_features(traffic: LabelledTraffic, config: SpamConfig) -> F64:
    """Per event (in `traffic`'s order, sorted by time): its features at the judge round
    that gives it its verdict, rounds every `judge_interval_s` from the first event."""
    events = traffic.events
    durations = traffic.durations_of(events.reel_ids)
    out = np.full((len(events), len(FEATURE_NAMES)), np.nan, dtype=np.float64)
    history = EventHistory(int(config.history_s * 1000), config.max_history_events)
    interval_ms = int(config.judge_interval_s * 1000)
    settle_ms = int(config.settle_s * 1000)
    if not len(events):
        return out
    now_ms = int(events.ts_ms[0])
    taken = 0
    while taken < len(events) or not bool(history.decided.all()):
        now_ms += interval_ms
        arrived = int(np.searchsorted(events.ts_ms, now_ms, side="left"))
        if arrived > taken:
            fresh = np.arange(taken, arrived)
            history.add(events.take(fresh), durations[fresh], now_ms)
            taken = arrived
        deciding = history.settled(now_ms, settle_ms) & ~history.decided
        if deciding.any():
            features = extract_features(history.events, history.durations_ms)
            out[history.seq[deciding]] = features[deciding]
            history.decided |= deciding
    return out


def _featurise(spec: TrafficSpec) -> tuple[F64, BoolArray]:
    with threadpool_limits(1):
        traffic = counted_traffic(spec)
        return served_features(traffic, SpamConfig()), traffic.family != Family.ORGANIC


def train_served(workers: int = 2) -> SpamModel:
    """The candidate: fitted on served features of the training seeds, its threshold the
    lowest margin with precision >= TARGET_PRECISION on the validation seed's."""
    started = time.perf_counter()
    training = [training_spec(seed) for seed in TRAINING_SEEDS]
    validation = validation_specs(VALIDATION_SEED, TRAINING_FAMILIES)
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_featurise, training + validation))
    fit, check = parts[: len(training)], parts[len(training) :]
    model = SpamModel.fit(
        "v2-served",
        np.concatenate([p[0] for p in fit]),
        np.concatenate([p[1] for p in fit]),
    )
    features = np.concatenate([p[0] for p in check])
    labels = np.concatenate([p[1] for p in check])
    validated = set_threshold(model, features, labels, TARGET_PRECISION)
    model.metadata = {
        "command": "python -m spam.served_training",
        "features_as": "served: at each event's verdict round (SpamConfig defaults)",
        "validation": {
            "seed": VALIDATION_SEED,
            "target_precision": TARGET_PRECISION,
            **validated,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = train_served()
    model.save(args.out)
    print(f"wrote {args.out} (threshold margin {model.threshold:.3f}): {model.metadata}")


if __name__ == "__main__":
    main()
