"""`python -m spam.scoring_bench`: one core's scoring rate, sklearn beside the compiled trees.

Scores what `spam.evaluation.throughput` scores: the features of the first evaluation
seed's traffic, tiled to `SCORING_ROWS` rows, as `is_spam` does (margins, then the
threshold). The two scorers run alternately, `--repeats` times each, with thread pools
limited to one thread (the compiled walker uses one thread anyway); printed: each one's
median, min and max events/s, the one-off costs of the compiled walker (importing numba
and the JIT compile, which `SpamModel.load` pays, i.e. a service at start), and whether
margins and decisions agree. Run it under the machine lock: `flock
/tmp/reelstream-machine.lock python -m spam.scoring_bench`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from loadtest.spam_traffic import TrafficSpec
from spam.evaluation import EVAL_SEEDS, SCORING_ROWS
from spam.features import extract_features
from spam.model import DEFAULT_MODEL_PATH, SpamModel
from spam.training import counted_traffic
from spam.tree_scoring import compile_kernel

F64 = npt.NDArray[np.float64]


def scoring_rows(seed: int, rows: int) -> F64:
    """The features of `seed`'s counted traffic, tiled to `rows` rows (C-contiguous)."""
    traffic = counted_traffic(TrafficSpec(seed=seed))
    events = traffic.events
    features = extract_features(events, traffic.durations_of(events.reel_ids))
    tiled = np.tile(features, (rows // len(features) + 1, 1))[:rows]
    return np.ascontiguousarray(tiled)


def _rate(run: Callable[[], object], rows: int) -> float:
    started = time.perf_counter()
    run()
    return rows / (time.perf_counter() - started)


def _line(name: str, rates: list[float]) -> str:
    return (
        f"{name:9s} median {statistics.median(rates):>12,.0f} events/s"
        f"  min {min(rates):>12,.0f}  max {max(rates):>12,.0f}  ({len(rates)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--seed", type=int, default=EVAL_SEEDS[0])
    parser.add_argument("--rows", type=int, default=SCORING_ROWS)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    started = time.perf_counter()
    import numba  # noqa: F401  (timed apart from the compile it precedes)

    import_s = time.perf_counter() - started
    started = time.perf_counter()
    compile_kernel()
    compile_s = time.perf_counter() - started
    model = SpamModel.load(args.model)
    rows = scoring_rows(args.seed, args.rows)

    with threadpool_limits(1):
        sklearn_margins = model.classifier.decision_function(rows)
        margins = model.margins(rows)
        differing = int(
            np.count_nonzero(model.is_spam(rows) != (sklearn_margins >= model.threshold))
        )

        def sklearn_is_spam() -> object:
            return model.classifier.decision_function(rows) >= model.threshold

        sklearn_rates: list[float] = []
        compiled_rates: list[float] = []
        # Alternated, so drift in the machine's speed (a shared machine) hits both alike.
        for _ in range(args.repeats):
            sklearn_rates.append(_rate(sklearn_is_spam, len(rows)))
            compiled_rates.append(_rate(lambda: model.is_spam(rows), len(rows)))

    print(
        f"model {args.model.name}, seed {args.seed}: {len(rows):,} rows, one thread;"
        f" numba import {import_s:.2f} s, JIT compile {compile_s:.2f} s (once per process)"
    )
    print(
        f"margins: max |compiled - sklearn| {np.max(np.abs(margins - sklearn_margins)):.3g},"
        f" bit-identical {np.array_equal(margins, sklearn_margins)};"
        f" decisions differing {differing} of {len(rows):,}"
    )
    print(_line("sklearn", sklearn_rates))
    print(_line("compiled", compiled_rates))
    speedup = statistics.median(compiled_rates) / statistics.median(sklearn_rates)
    print(f"speed-up (medians) {speedup:.2f}x")
    if differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
