"""The compiled trees score as sklearn's `decision_function` does (spam.tree_scoring).

Margins are compared to 1e-9 (the walker sums the same leaves in sklearn's order, so they
are in fact bit-identical); decisions against the threshold must be identical.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from spam.features import FEATURE_NAMES
from spam.model import DEFAULT_MODEL_PATH, SpamModel
from spam.tree_scoring import CompiledTrees, UnsupportedModel

F64 = npt.NDArray[np.float64]
TOLERANCE = 1e-9
N_FEATURES = len(FEATURE_NAMES)


def nan_aware_training_rows(rows: int, seed: int) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Rows where missing values carry signal both ways: NaN in feature 0 means spam,
    NaN in feature 1 means organic, so trees send NaN left at some nodes, right at others."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES))
    labels = features[:, 2] + 0.5 * features[:, 3] > 0.3
    spam_nan = labels & (rng.random(rows) < 0.5)
    organic_nan = ~labels & (rng.random(rows) < 0.5)
    features[spam_nan, 0] = np.nan
    features[organic_nan, 1] = np.nan
    features[rng.random((rows, N_FEATURES)) < 0.02] = np.nan
    return features, labels


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # sklearn on one thread: on small batches OpenMP's start-up costs more than scoring.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def small_model() -> SpamModel:
    features, labels = nan_aware_training_rows(3_000, seed=5)
    return SpamModel.fit("test", features, labels, max_iter=12, max_leaf_nodes=9)


@pytest.fixture(scope="module")
def model_v3() -> SpamModel:
    return SpamModel.load(DEFAULT_MODEL_PATH)


@pytest.fixture(params=["small", "v3"])
def model(request: pytest.FixtureRequest, small_model: SpamModel, model_v3: SpamModel) -> SpamModel:
    return small_model if request.param == "small" else model_v3


def thresholds_by_feature(model: SpamModel) -> dict[int, F64]:
    trees = model.trees
    return {
        feature: trees.threshold[trees.feature == feature]
        for feature in np.unique(trees.feature).tolist()
    }


def random_rows(rows: int, seed: int) -> F64:
    """Wide-ranged values with 15% NaN and a few infinities."""
    rng = np.random.default_rng(seed)
    features = (
        rng.normal(size=(rows, N_FEATURES)) * rng.choice([0.1, 1, 10, 1e3, 1e6], rows)[:, None]
    )
    features[rng.random(features.shape) < 0.15] = np.nan
    features[rng.random(features.shape) < 0.01] = np.inf
    features[rng.random(features.shape) < 0.01] = -np.inf
    return features


def rows_on_thresholds(model: SpamModel, rows: int, seed: int) -> F64:
    """Every value a split threshold of its feature, the next float above or below it, or
    NaN: the rows sit on the decision boundaries of the trees they walk."""
    rng = np.random.default_rng(seed)
    features = random_rows(rows, seed)
    for feature, thresholds in thresholds_by_feature(model).items():
        candidates = np.concatenate(
            [
                thresholds,
                np.nextafter(thresholds, np.inf),
                np.nextafter(thresholds, -np.inf),
                [np.nan],
            ]
        )
        features[:, feature] = rng.choice(candidates, rows)
    return features


def sklearn_margins(model: SpamModel, features: F64) -> F64:
    margins: F64 = model.classifier.decision_function(features)
    return margins


def assert_scores_like_sklearn(model: SpamModel, features: F64) -> None:
    expected = sklearn_margins(model, features)
    np.testing.assert_allclose(model.margins(features), expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(model.is_spam(features), expected >= model.threshold)


def test_small_model_sends_nan_both_ways(small_model: SpamModel) -> None:
    nan_left = small_model.trees.nan_left
    assert nan_left.any()
    assert not nan_left.all()


def test_margins_equal_sklearn_on_random_rows_with_nan_and_inf(model: SpamModel) -> None:
    assert_scores_like_sklearn(model, random_rows(20_000, seed=1))


def test_rows_on_split_thresholds_take_sklearn_branches(model: SpamModel) -> None:
    assert_scores_like_sklearn(model, rows_on_thresholds(model, 20_000, seed=2))


def test_rows_entirely_missing_follow_the_missing_branches(model: SpamModel) -> None:
    assert_scores_like_sklearn(model, np.full((3, N_FEATURES), np.nan))


def test_model_v3_decisions_equal_sklearn_at_its_threshold(model_v3: SpamModel) -> None:
    features = rows_on_thresholds(model_v3, 50_000, seed=3)
    expected = sklearn_margins(model_v3, features) >= model_v3.threshold
    assert expected.any()
    assert not expected.all()
    np.testing.assert_array_equal(model_v3.is_spam(features), expected)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_rows_score_as_in_sklearn(small_model: SpamModel, data: st.DataObject) -> None:
    thresholds = small_model.trees.threshold.tolist()
    value = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(thresholds),
        st.sampled_from(thresholds).map(lambda t: float(np.nextafter(t, np.inf))),
    )
    shape = st.tuples(st.integers(1, 32), st.just(N_FEATURES))
    rows = data.draw(arrays(np.float64, shape, elements=value))
    assert_scores_like_sklearn(small_model, rows)


def test_trees_that_are_single_leaves_score_their_leaf() -> None:
    rng = np.random.default_rng(0)
    features = np.ones((200, N_FEATURES))  # nothing to split on: every tree is its root
    model = SpamModel.fit("test", features, rng.random(200) < 0.3, max_iter=3)
    assert (model.trees.roots < 0).all()
    assert_scores_like_sklearn(model, random_rows(100, seed=4))


def test_any_layout_or_dtype_scores_alike(small_model: SpamModel) -> None:
    features = random_rows(1_000, seed=6)
    expected = small_model.margins(features)
    read_only = features.copy()
    read_only.setflags(write=False)
    for variant in (np.asfortranarray(features), features[:, ::-1][:, ::-1], read_only):
        np.testing.assert_array_equal(small_model.margins(variant), expected)
    as_float32 = features.astype(np.float32)
    np.testing.assert_allclose(
        small_model.margins(as_float32),
        sklearn_margins(small_model, as_float32),
        rtol=0,
        atol=TOLERANCE,
    )


def test_wrong_number_of_features_is_refused(small_model: SpamModel) -> None:
    with pytest.raises(ValueError, match="shape"):
        small_model.margins(np.zeros((2, N_FEATURES - 1)))
    with pytest.raises(ValueError, match="shape"):
        small_model.margins(np.zeros(N_FEATURES))


def test_classifier_with_categorical_features_is_refused_at_compile() -> None:
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300)]).astype(float)
    classifier = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0])
    classifier.fit(features, features[:, 0] == 2)
    with pytest.raises(UnsupportedModel, match="categorical features \\[0\\]"):
        CompiledTrees.from_classifier(classifier)


def test_multiclass_classifier_is_refused_at_compile() -> None:
    rng = np.random.default_rng(0)
    classifier = HistGradientBoostingClassifier(max_iter=1)
    classifier.fit(rng.normal(size=(60, 3)), rng.integers(0, 3, 60))
    with pytest.raises(UnsupportedModel, match="binary"):
        CompiledTrees.from_classifier(classifier)


def test_compiled_trees_are_derived_not_pickled(small_model: SpamModel) -> None:
    assert small_model.trees is small_model.trees
    copy = pickle.loads(pickle.dumps(small_model))
    assert "_compiled" not in small_model.__getstate__()
    assert copy._compiled is None
    features = random_rows(500, seed=8)
    np.testing.assert_array_equal(copy.margins(features), small_model.margins(features))


def test_artifacts_hold_the_sklearn_classifier_only(model_v3: SpamModel) -> None:
    # model-v3.pkl was written before the compiled trees existed; it loads (the fixture)
    # and scores (the tests above) all the same.
    assert b"_compiled" not in DEFAULT_MODEL_PATH.read_bytes()
    assert isinstance(model_v3.classifier, HistGradientBoostingClassifier)


def test_a_replaced_classifier_is_compiled_again(small_model: SpamModel) -> None:
    model = pickle.loads(pickle.dumps(small_model))
    before = model.trees
    features, labels = nan_aware_training_rows(1_000, seed=10)
    model.classifier = SpamModel.fit("other", features, labels, max_iter=4).classifier
    assert model.trees is not before
    assert_scores_like_sklearn(model, random_rows(500, seed=11))


class ConstantClassifier:
    def decision_function(self, features: F64) -> F64:
        return np.full(len(features), 2.0)


def test_a_classifier_other_than_sklearns_scores_itself() -> None:
    # Test doubles elsewhere (test_spam_detection_delay) stand in for the classifier.
    model = SpamModel("test", FEATURE_NAMES, cast(Any, ConstantClassifier()), threshold=1.0)
    model.warm_up()
    np.testing.assert_array_equal(model.margins(np.zeros((2, N_FEATURES))), [2.0, 2.0])
    assert model.is_spam(np.zeros((2, N_FEATURES))).all()
