"""The spam classifier's fitted trees compiled into one single-threaded walker.

sklearn's `decision_function` validates and converts its input, then walks the trees one at
a time over every row (OpenMP), adding each tree's leaf to a column of raw predictions. The
compiled form walks every tree for a row before the next row, from flat node arrays that
fit in L1, in a numba kernel compiled once per process (`compile_kernel`, paid when a model
is loaded). It makes the same decisions at every node: a value `<= num_threshold` goes
left, NaN follows the node's `missing_go_to_left`; and it sums the same leaf values in the
same order from the same baseline, so its margins equal sklearn's bit for bit (the tests
allow 1e-9).

Only what the spam model uses is supported: binary classification (one tree per
iteration) over numeric features. A classifier with categorical features is refused at
compile time (`UnsupportedModel`): sklearn's categorical splits (bitsets, unknown
categories treated as missing) are not implemented here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]


class UnsupportedModel(ValueError):
    """The classifier uses what the compiled walker does not implement."""


@dataclass(frozen=True)
class CompiledTrees:
    """The trees of a fitted binary `HistGradientBoostingClassifier` as flat arrays.

    Internal nodes of every tree are numbered together; a child index `c >= 0` is an
    internal node, `c < 0` the leaf `~c` (leaves are numbered together too). A tree whose
    root is a leaf has a negative root.
    """

    n_features: int
    baseline: float
    """sklearn's `_baseline_prediction`: the margin before any tree."""
    roots: I32
    feature: I32
    threshold: F64
    nan_left: BoolArray
    """Whether NaN goes left at the node (sklearn's `missing_go_to_left`)."""
    left: I32
    right: I32
    leaf_value: F64

    @classmethod
    def from_classifier(cls, classifier: HistGradientBoostingClassifier) -> CompiledTrees:
        """The fitted `classifier`'s trees.

        Raises:
            UnsupportedModel: it is not binary, or it has categorical features or splits.
        """
        if classifier.n_trees_per_iteration_ != 1:
            raise UnsupportedModel(
                f"{classifier.n_trees_per_iteration_} trees per iteration: only binary"
                " classifiers (one tree per iteration) are compiled"
            )
        categorical = classifier.is_categorical_
        if categorical is not None and np.any(categorical):
            raise UnsupportedModel(
                "the classifier has categorical features"
                f" {np.flatnonzero(categorical).tolist()}; the compiled walker implements"
                " numeric splits only (score with classifier.decision_function instead)"
            )
        roots: list[int] = []
        parts: dict[str, list[npt.NDArray[Any]]] = {
            name: [] for name in ("feature", "threshold", "nan_left", "left", "right", "leaf")
        }
        n_internal = 0
        n_leaves = 0
        for (predictor,) in classifier._predictors:
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                raise UnsupportedModel("a tree has categorical splits")
            is_leaf = nodes["is_leaf"].astype(np.bool_)
            internal = np.flatnonzero(~is_leaf)
            leaves = np.flatnonzero(is_leaf)
            code = np.empty(len(nodes), np.int64)
            code[internal] = n_internal + np.arange(len(internal))
            code[leaves] = ~(n_leaves + np.arange(len(leaves)))
            roots.append(int(code[0]))
            parts["feature"].append(nodes["feature_idx"][internal])
            parts["threshold"].append(nodes["num_threshold"][internal])
            parts["nan_left"].append(nodes["missing_go_to_left"][internal])
            parts["left"].append(code[nodes["left"][internal]])
            parts["right"].append(code[nodes["right"][internal]])
            parts["leaf"].append(nodes["value"][leaves])
            n_internal += len(internal)
            n_leaves += len(leaves)

        def joined(name: str, dtype: type[np.generic]) -> npt.NDArray[Any]:
            return np.ascontiguousarray(np.concatenate(parts[name]), dtype=dtype)

        return cls(
            n_features=int(classifier.n_features_in_),
            baseline=float(classifier._baseline_prediction.item()),
            roots=np.array(roots, dtype=np.int32),
            feature=joined("feature", np.int32),
            threshold=joined("threshold", np.float64),
            nan_left=joined("nan_left", np.bool_),
            left=joined("left", np.int32),
            right=joined("right", np.int32),
            leaf_value=joined("leaf", np.float64),
        )

    def margins(self, features: F64) -> F64:
        """The raw margin of each row of `features` (n_rows x n_features), as sklearn's
        `decision_function` gives it. Converts to C-contiguous float64 only if needed.

        Raises:
            ValueError: `features` is not two-dimensional with `n_features` columns.
        """
        rows = np.ascontiguousarray(features, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"expected features of shape (rows, {self.n_features}), got {rows.shape}"
            )
        out = np.empty(len(rows), dtype=np.float64)
        compile_kernel()(
            rows,
            self.baseline,
            self.roots,
            self.feature,
            self.threshold,
            self.nan_left,
            self.left,
            self.right,
            self.leaf_value,
            out,
        )
        return out


def _walk(
    rows: F64,
    baseline: float,
    roots: I32,
    feature: I32,
    threshold: F64,
    nan_left: BoolArray,
    left: I32,
    right: I32,
    leaf_value: F64,
    out: F64,
) -> None:
    """The kernel numba compiles (plain Python it is, too slow to call as is)."""
    for row in range(rows.shape[0]):
        # Same order as sklearn: baseline, then tree 0, 1, ...: the float sum is identical.
        margin = baseline
        for tree in range(roots.shape[0]):
            node = roots[tree]
            while node >= 0:
                value = rows[row, feature[node]]
                # `value <= threshold` is False for NaN, which then takes the node's side.
                if value <= threshold[node] or (value != value and nan_left[node]):
                    node = left[node]
                else:
                    node = right[node]
            margin += leaf_value[~node]
        out[row] = margin


@functools.cache
def compile_kernel() -> Callable[..., None]:
    """The compiled `_walk`, built on the first call in a process (about a second:
    `SpamModel.load` pays it, so a service pays it at start, not on its first round)."""
    # Imported here: importing numba costs a fraction of a second that code importing
    # `spam` without scoring (the edges' screen, tools) should not pay.
    import numba

    readonly_f64_2d = numba.types.Array(numba.float64, 2, "C", readonly=True)

    def readonly(dtype: Any) -> Any:
        return numba.types.Array(dtype, 1, "C", readonly=True)

    signature = numba.void(
        readonly_f64_2d,
        numba.float64,
        readonly(numba.int32),
        readonly(numba.int32),
        readonly(numba.float64),
        readonly(numba.boolean),
        readonly(numba.int32),
        readonly(numba.int32),
        readonly(numba.float64),
        numba.float64[::1],
    )
    # One explicit signature with read-only inputs: writable and read-only arrays (a
    # memory-mapped batch) share one compiled version; nogil lets other threads run.
    kernel: Callable[..., None] = numba.njit(signature, nogil=True, cache=False)(_walk)
    return kernel
