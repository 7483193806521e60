"""Unit tests of the training profile and drift (pandas counting); the Spark counting and the
whole `predict` path are checked end to end in test_e2e_predict."""

import numpy as np
import pandas as pd
import pytest

from tabular_pipeline.data.synthetic import make_mixed_table
from tabular_pipeline.errors import PipelineError
from tabular_pipeline.monitoring.drift import DriftCounter, parse_thresholds, psi
from tabular_pipeline.monitoring.profile import training_profile
from tabular_pipeline.monitoring.report import metric_name, render_report

FEATURES = ["num_00", "num_01", "num_02", "num_03", "num_04", "count_00", "cat_00", "cat_01", "cat_02", "flag"]


def features(rows: int, seed: int) -> pd.DataFrame:
    table = make_mixed_table(rows, columns=12, seed=seed)[FEATURES]
    return table.astype({name: object for name in ("cat_00", "cat_01", "cat_02")})


def drifted(frame: pd.DataFrame) -> pd.DataFrame:
    """One scaled number, one mostly missing column, one new dominant category."""
    rng = np.random.default_rng(9)
    changed = frame.copy()
    changed["num_01"] = changed["num_01"] * 10
    changed.loc[rng.random(len(changed)) < 0.8, "num_02"] = np.nan
    changed.loc[rng.random(len(changed)) < 0.7, "cat_00"] = "a brand new level"
    return changed


@pytest.fixture(scope="module")
def profile():
    return training_profile(features(2000, seed=1))


def drift_of(profile, frame, batches=1, thresholds="") -> dict:
    counter = DriftCounter(profile)
    for part in np.array_split(np.arange(len(frame)), batches):
        counter.add(frame.iloc[part])
    return {d.column: d for d in counter.result(parse_thresholds(thresholds))}


def test_the_profile_describes_each_feature(profile):
    columns = profile["columns"]
    assert profile["rows"] == 2000 and list(columns) == FEATURES
    number, category, flag = columns["num_00"], columns["cat_01"], columns["flag"]
    assert number["kind"] == "number" and len(number["shares"]) == len(number["edges"]) + 1 == 10
    assert sum(number["shares"]) == pytest.approx(1) and 0.02 < number["missing"] < 0.08
    assert number["quantiles"]["0.01"] < number["quantiles"]["0.5"] < number["quantiles"]["0.99"]
    assert category["kind"] == "category" and len(category["top"]) == 8 and category["other"] == pytest.approx(0)
    assert flag["boolean"] and set(flag["top"]) == {"true", "false"}


def test_a_table_from_the_training_distribution_flags_nothing(profile):
    result = drift_of(profile, features(3000, seed=2))
    assert [name for name, d in result.items() if d.drifted] == []
    assert max(d.psi for d in result.values()) < 0.2


def test_one_scaled_number_one_missing_column_and_one_new_category_are_flagged_exactly(profile):
    result = drift_of(profile, drifted(features(3000, seed=2)))
    assert sorted(name for name, d in result.items() if d.drifted) == ["cat_00", "num_01", "num_02"]
    assert result["num_01"].psi > 1 and result["num_02"].missing_change > 0.7 and result["cat_00"].unseen_share > 0.6


def test_batches_count_the_same_as_the_whole_table(profile):
    table = drifted(features(1000, seed=3))
    whole, streamed = drift_of(profile, table), drift_of(profile, table, batches=7)
    assert {k: v.psi for k, v in whole.items()} == pytest.approx({k: v.psi for k, v in streamed.items()})


def test_thresholds_can_be_changed_and_are_checked(profile):
    lenient = drift_of(profile, drifted(features(3000, seed=2)), thresholds="psi=99;missing=0.5")
    assert [name for name, d in lenient.items() if d.drifted] == ["num_02"], "only the missing share crosses these"
    assert parse_thresholds("") == {"psi": 0.2, "missing": 0.1}
    for bad, message in (("psi=high", "psi='high' is not a positive number"), ("ks=0.1", "unknown threshold 'ks'")):
        with pytest.raises(PipelineError, match=message):
            parse_thresholds(bad)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert 0 < psi([0.5, 0.5], [0.6, 0.4]) < psi([0.5, 0.5], [0.9, 0.1])


def test_the_report_lists_columns_by_drift_and_shows_the_drifted_ones(profile):
    result = sorted(drift_of(profile, drifted(features(3000, seed=2))).values(), key=lambda d: -d.psi)
    page = render_report(result, "models:/m-1", "/data/new.csv", {"psi": 0.2, "missing": 0.1}, 3000)
    assert "3 of 10 columns drifted" in page and page.index("num_01") < page.index("num_03")
    assert page.count('class="pair"') == 3
    assert metric_name("income (€)") == "drift.income ___", "characters MLflow refuses in metric names"


def test_the_profile_is_plain_json(profile):
    """Flags with gaps are held as objects by pandas; their profile is still plain JSON."""
    import json

    gappy = pd.DataFrame({"member": [True, None, False, True], "x": [1.0, 2.0, np.nan, 4.0]})
    for described in (profile, training_profile(gappy)):
        assert json.loads(json.dumps(described)) == described
    assert training_profile(gappy)["columns"]["member"]["boolean"] is True


def test_a_small_table_is_not_judged_on_noise(profile):
    """Twenty rows of the training distribution would cross PSI 0.2 by chance on ten bins."""
    result = drift_of(profile, drifted(features(20, seed=2)))
    assert not any(d.drifted for d in result.values()) and not any(d.judged for d in result.values())
    enough = drift_of(profile, features(3000, seed=2))
    assert all(d.judged for d in enough.values())


@pytest.mark.parametrize("missing_share", [1.0, 0.99, 0.9])
def test_a_column_that_empties_is_flagged_even_with_too_few_values_for_psi(profile, missing_share):
    """The emptier a column gets, the fewer values PSI has; the missing share still judges it."""
    table = features(3000, seed=2)
    table.loc[np.random.default_rng(4).random(len(table)) < missing_share, "num_02"] = np.nan
    table.loc[:, "cat_01"] = None
    result = drift_of(profile, table)
    assert sorted(name for name, d in result.items() if d.drifted) == ["cat_01", "num_02"]
    assert result["num_02"].judged and result["cat_01"].judged and result["cat_01"].missing_change > 0.9
