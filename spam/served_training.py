"""`make train-spam`: the shipped classifier, trained on what the judge sees.

The service judges each event once, `settle_s` after it arrived, with the hour before it
and what came in meanwhile (`spam.judge_rounds`). Here each training and validation event
gets the features the service's rounds would give it (`served_features`: the rounds
replayed in simulated time with `SpamConfig` defaults, features of the history at the
round that decides the event); the trees are fitted on those (`spam.training`'s seeds and
families) and the threshold is the lowest margin with precision >= TARGET_PRECISION on the
validation seed's served features (both validation periods). Whole-run features (every
event judged with all of its run in view, `spam.training.train`) are what model-v2 was
trained on, and what the evaluation's leave-one-family-out models still use (cheap).
CPU-heavy (one featurisation of a 2 h run costs about as much as its replay, ~4 min a
core; two worker processes, ~7 min): run it under the machine lock.
"""

from __future__ import annotations

import argparse
import datetime
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sklearn
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import Family, LabelledTraffic, TrafficSpec
from spam.config import SpamConfig
from spam.features import FEATURE_NAMES, extract_features
from spam.history import EventHistory
from spam.model import DEFAULT_MODEL_PATH, SpamModel
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

MODEL_VERSION = "v3"


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
    """The classifier: fitted on served features of the training seeds, its threshold the
    lowest margin with precision >= TARGET_PRECISION on the validation seed's."""
    started = time.perf_counter()
    training = [training_spec(seed) for seed in TRAINING_SEEDS]
    validation = validation_specs(VALIDATION_SEED, TRAINING_FAMILIES)
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_featurise, training + validation))
    fit, check = parts[: len(training)], parts[len(training) :]
    labels = np.concatenate([p[1] for p in fit])
    with threadpool_limits(1):
        model = SpamModel.fit(MODEL_VERSION, np.concatenate([p[0] for p in fit]), labels)
    features = np.concatenate([p[0] for p in check])
    validation_labels = np.concatenate([p[1] for p in check])
    validated = set_threshold(model, features, validation_labels, TARGET_PRECISION)
    model.metadata = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "make train-spam",
        "sklearn_version": sklearn.__version__,
        "features_as": "served: at each event's verdict round (SpamConfig defaults)",
        "training": {
            "seeds": list(TRAINING_SEEDS),
            "families": [f.name for f in TRAINING_FAMILIES],
            "events": len(labels),
            "spam_share": round(float(labels.mean()), 4),
        },
        "validation": {
            "seed": VALIDATION_SEED,
            "target_precision": TARGET_PRECISION,
            "events": len(validation_labels),
            **validated,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "features": list(FEATURE_NAMES),
    }
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    model = train_served()
    model.save(args.out)
    print(f"wrote {args.out} (threshold margin {model.threshold:.3f})")
    print(f"validation: {model.metadata['validation']}")
    print(f"training: {model.metadata['training']}")


if __name__ == "__main__":
    main()
