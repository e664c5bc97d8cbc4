"""Training traffic, and the classifier trained on whole runs.

Training traffic holds organic viewers and the training families (never GEO_HOPPING or
SLOW_DRIP, which evaluation keeps as unseen families); the threshold is chosen on a separate
validation seed as the lowest margin that keeps event precision >= the target. `train`
fits on whole-run features (every event judged with all of its run in view: how model-v2
was trained, and what the evaluation's leave-one-family-out models use, being cheap); the
shipped model is trained on the features the judge serves (`spam.served_training`, `make
train-spam`). `python -m spam.training --out PATH` writes a whole-run model.
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sklearn

from loadtest.spam_traffic import (
    DEFAULT_ATTACKERS,
    Family,
    LabelledTraffic,
    TrafficSpec,
    passes_view_rule,
    simulate,
)
from spam.features import FEATURE_NAMES, extract_features
from spam.model import SpamModel, threshold_for_precision

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TRAINING_FAMILIES = (
    Family.SHORT_WATCH,
    Family.LOCKSTEP,
    Family.LIKE_FARM,
    Family.CAMOUFLAGED,
    Family.TAKEOVER,
)
HELD_OUT_FAMILIES = (Family.GEO_HOPPING, Family.SLOW_DRIP)
TRAINING_SEEDS = (11, 12)
VALIDATION_SEED = 13
TARGET_PRECISION = 0.9995
MODEL_VERSION = "v2"


def training_spec(seed: int, families: tuple[Family, ...] = TRAINING_FAMILIES) -> TrafficSpec:
    return replace(
        TrafficSpec(seed=seed),
        attackers={family: DEFAULT_ATTACKERS[family] for family in families},
    )


def validation_specs(seed: int, families: tuple[Family, ...]) -> list[TrafficSpec]:
    """Where the threshold is chosen: a full-size period, and a small one (1,500 viewers,
    20 minutes, a tenth of the attackers) like a lightly loaded service's first minutes,
    where per-reel and per-actor aggregates rest on few events."""
    full = training_spec(seed, families)
    small = replace(
        full,
        duration_s=1_200,
        reels=300,
        organic_users=1_500,
        attackers={family: max(5, count // 10) for family, count in full.attackers.items()},
    )
    return [full, small]


def counted_traffic(spec: TrafficSpec) -> LabelledTraffic:
    """The simulated traffic the edge would count (what the filter sees)."""
    traffic = simulate(spec)
    return traffic.take(passes_view_rule(traffic))


def featurise(traffic: LabelledTraffic) -> tuple[F64, BoolArray]:
    events = traffic.events
    features = extract_features(events, traffic.durations_of(events.reel_ids))
    return features, traffic.family != Family.ORGANIC


def set_threshold(
    model: SpamModel, features: F64, labels: BoolArray, target_precision: float
) -> dict[str, float]:
    """Sets `model.threshold` to the lowest margin reaching `target_precision` on these
    labelled events; returns the precision, recall and false-positive rate it gives there."""
    margins = model.margins(features)
    model.threshold = threshold_for_precision(margins, labels, target_precision)
    flagged = margins >= model.threshold
    hits = int((flagged & labels).sum())
    return {
        "precision": round(hits / max(1, int(flagged.sum())), 5),
        "recall": round(hits / max(1, int(labels.sum())), 5),
        "false_positive_rate": round(
            int((flagged & ~labels).sum()) / max(1, int((~labels).sum())), 6
        ),
    }


def train(
    seeds: tuple[int, ...] = TRAINING_SEEDS,
    validation_seed: int = VALIDATION_SEED,
    target_precision: float = TARGET_PRECISION,
    families: tuple[Family, ...] = TRAINING_FAMILIES,
) -> SpamModel:
    """A model trained on organic viewers and `families` (seeds `seeds`), its threshold
    chosen on `validation_seed` (the same families) for `target_precision`."""
    started = time.perf_counter()
    parts = [featurise(counted_traffic(training_spec(seed, families))) for seed in seeds]
    features = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    model = SpamModel.fit(MODEL_VERSION, features, labels)
    validation = [
        featurise(counted_traffic(spec)) for spec in validation_specs(validation_seed, families)
    ]
    validation_features = np.concatenate([v[0] for v in validation])
    validation_labels = np.concatenate([v[1] for v in validation])
    validated = set_threshold(model, validation_features, validation_labels, target_precision)
    model.metadata = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m spam.training",
        "sklearn_version": sklearn.__version__,
        "training": {
            "seeds": list(seeds),
            "families": [f.name for f in families],
            "events": len(labels),
            "spam_share": round(float(labels.mean()), 4),
            "seconds": round(time.perf_counter() - started, 1),
        },
        "validation": {
            "seed": validation_seed,
            "target_precision": target_precision,
            "events": len(validation_labels),
            **validated,
        },
        "features": list(FEATURE_NAMES),
    }
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    model = train()
    model.save(args.out)
    print(f"wrote {args.out} (threshold margin {model.threshold:.3f})")
    print(f"validation: {model.metadata['validation']}")
    print(f"training: {model.metadata['training']}")


if __name__ == "__main__":
    main()
