"""The spam classifier: gradient-boosted trees over `spam.features`, with its threshold.

An artifact is a pickle of `SpamModel` plus a JSON sidecar (version, features, threshold,
metrics, training command) written by `spam.training`. Only artifacts this project wrote
are loaded (pickle runs code). Scores are the model's raw margin (log-odds): thresholding
the margin skips the sigmoid.

Scoring runs the classifier's trees compiled by `spam.tree_scoring` (the same margins as
sklearn's `decision_function`, several times faster on one core). The compiled form is
derived from the classifier when first needed and never pickled, so artifacts hold the
plain sklearn classifier and ones written before it existed still load.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier

from spam.features import FEATURE_NAMES
from spam.tree_scoring import CompiledTrees

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "spam" / "model-v3.pkl"


class ModelMismatch(ValueError):
    """The artifact was trained on other features than this code computes."""


@dataclass
class SpamModel:
    """A fitted classifier and the margin above which an event is spam."""

    version: str
    feature_names: tuple[str, ...]
    classifier: HistGradientBoostingClassifier
    threshold: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    # The classifier it was compiled from beside it: a replaced classifier is recompiled.
    _compiled: tuple[HistGradientBoostingClassifier, CompiledTrees] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_compiled", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._compiled = None

    @classmethod
    def fit(
        cls,
        version: str,
        features: F64,
        labels: BoolArray,
        max_iter: int = 30,
        max_leaf_nodes: int = 15,
        seed: int = 0,
    ) -> SpamModel:
        classifier = HistGradientBoostingClassifier(
            max_iter=max_iter,
            max_leaf_nodes=max_leaf_nodes,
            learning_rate=0.2,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
        classifier.fit(features, labels)
        return cls(version, FEATURE_NAMES, classifier)

    @property
    def trees(self) -> CompiledTrees:
        """The classifier's trees compiled for scoring (built on first use).

        Raises:
            UnsupportedModel: the classifier uses categorical features.
        """
        if self._compiled is None or self._compiled[0] is not self.classifier:
            self._compiled = (self.classifier, CompiledTrees.from_classifier(self.classifier))
        return self._compiled[1]

    def warm_up(self) -> None:
        """Compiles the trees and the scoring kernel now rather than on the first score
        (the kernel's JIT compile takes about a second, once per process)."""
        if isinstance(self.classifier, HistGradientBoostingClassifier):
            trees = self.trees
            trees.margins(np.zeros((1, trees.n_features), dtype=np.float64))

    def margins(self, features: F64) -> F64:
        """Raw scores (log-odds of spam), one per row: sklearn's `decision_function`,
        computed by the compiled trees on the calling thread only. Any other classifier
        (a test double) scores with its own `decision_function`."""
        if not isinstance(self.classifier, HistGradientBoostingClassifier):
            scores: F64 = self.classifier.decision_function(features)
            return scores
        return self.trees.margins(features)

    def is_spam(self, features: F64) -> BoolArray:
        flagged: BoolArray = self.margins(features) >= self.threshold
        return flagged

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))
        sidecar = {
            "version": self.version,
            "features": list(self.feature_names),
            "threshold_margin": self.threshold,
            **self.metadata,
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> SpamModel:
        """Loads an artifact written by `save`, its trees compiled for scoring.

        Raises:
            ModelMismatch: its features differ from the ones this code computes.
            UnsupportedModel: its classifier cannot be compiled (categorical features).
        """
        model = pickle.loads(path.read_bytes())
        if not isinstance(model, SpamModel):
            raise ModelMismatch(f"{path} does not hold a SpamModel")
        if tuple(model.feature_names) != FEATURE_NAMES:
            raise ModelMismatch(
                f"{path} was trained on other features; run `make train-spam` again"
            )
        model.warm_up()
        return model


def threshold_for_precision(margins: F64, labels: BoolArray, target_precision: float) -> float:
    """The lowest margin whose flagged set still has at least `target_precision` (the
    highest recall at that precision); the largest margin plus one when none has."""
    order = np.argsort(-margins, kind="stable")
    sorted_margins = margins[order]
    hits = np.cumsum(labels[order])
    flagged = np.arange(1, len(order) + 1)
    precision = hits / flagged
    # Only cut between distinct margins: everything tied with a flagged event is flagged.
    last_of_tie = np.r_[sorted_margins[1:] != sorted_margins[:-1], True]
    ok = np.flatnonzero((precision >= target_precision) & last_of_tie)
    if len(ok) == 0:
        return float(sorted_margins[0]) + 1.0 if len(order) else 0.0
    return float(sorted_margins[ok[-1]])
