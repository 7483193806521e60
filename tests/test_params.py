"""Unit tests of parameter-string parsing: the untrusted-input boundary."""

from pathlib import Path

import pytest

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.parameters.hyperparameters import split_search_space, validate_hyperparameters
from tabular_pipeline.parameters.strings import (
    MAX_PARAM_STRING_LENGTH,
    format_param_string,
    parse_extra_options,
    parse_param_string,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("n_estimators=200;learning_rate=0.2", {"n_estimators": 200, "learning_rate": 0.2}),
        ("max_depth=[5, 10];n_estimators=[100, 200]", {"max_depth": [5, 10], "n_estimators": [100, 200]}),
        ("time_budget=30;estimator_list=['lgbm']", {"time_budget": 30, "estimator_list": ["lgbm"]}),
        ("boosting_type=gbdt; objective=binary:logistic", {"boosting_type": "gbdt", "objective": "binary:logistic"}),
        ("a=true;b=False;c=None;d=null", {"a": True, "b": False, "c": None, "d": None}),
        ("a=-1;b=+2.5;c=1e-3", {"a": -1, "b": 2.5, "c": 0.001}),
        ("n_estimators=200;", {"n_estimators": 200}),
        ("a=(1, 2)", {"a": [1, 2]}),
    ],
)
def test_parses_valid_strings(text, expected):
    assert parse_param_string(text) == expected


def test_value_may_contain_equals_sign_and_semicolons_inside_quotes():
    assert parse_param_string("x=a=b;y='c;d=e'") == {"x": "a=b", "y": "c;d=e"}


@pytest.mark.parametrize(
    "text",
    [
        "a=__import__('os').system('touch /tmp/x')",
        "a=().__class__.__base__",
        "a=lambda: 1",
        "a=open('/etc/passwd').read()",
        "a=[x for x in range(10)]",
        "a=1 if True else 2",
        "a=2**10**10",
        "a={'k': 1}",
        "a={1, 2}",
        "a=f'{1}'",
        "a=[[1, 2], [3]]",
        "a=" + "[" * 200 + "]" * 200,
        "a=1e999",
        "a='" + "x" * 300 + "'",
    ],
)
def test_refuses_anything_but_flat_literals(text):
    with pytest.raises(PipelineError, match="params: value of 'a'"):
        parse_param_string(text)


def test_hostile_string_creates_nothing(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {marker}')", f"a=__import__('os').system('touch {marker}')"):
        with pytest.raises(PipelineError):
            parse_param_string(text)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=1;;b=2", "empty entry"),
        (";a=1", "empty entry"),
        ("=1", "empty name"),
        ("=", "empty name"),
        ("novalue", "is not name=value"),
        ("a=", "has no value"),
        ("1a=2", "not a valid parameter name"),
        ("a.b=2", "not a valid parameter name"),
        ("a=1;a=2", "given twice"),
        ("a=\udcff", "not valid UTF-8"),
        ("a=" + "1" * (MAX_PARAM_STRING_LENGTH + 1), "characters long"),
        ("a=" + "1" * 1100, "at most 1024"),
        (";".join(f"p{i}=1" for i in range(65)), "at most 64"),
    ],
)
def test_malformed_strings_fail_with_one_clear_line(text, message):
    with pytest.raises(PipelineError, match=message) as caught:
        parse_param_string(text)
    assert "\n" not in str(caught.value)


def test_error_names_the_option_it_came_from():
    with pytest.raises(PipelineError, match="^search_params"):
        parse_param_string("a=[1,", "search_params")


def test_canonical_format_round_trips():
    params = {"b": "gbdt", "a": [0.05, 0.1], "c": None, "d": True}
    text = format_param_string(params)
    assert text == "a=[0.05, 0.1];b='gbdt';c=None;d=True"
    assert parse_param_string(text) == params


def test_extra_options_from_undeclared_mlflow_parameters():
    assert parse_extra_options(["--learning_rate", "0.2", "--colsample_bytree=0.8"]) == {
        "learning_rate": 0.2,
        "colsample_bytree": 0.8,
    }
    with pytest.raises(PipelineError, match="has no value"):
        parse_extra_options(["--learning_rate"])
    with pytest.raises(PipelineError, match="unexpected argument"):
        parse_extra_options(["stray"])
    with pytest.raises(PipelineError, match="refused"):
        parse_extra_options(["--x", "__import__('os')"])


def test_lists_become_search_values_and_singletons_fixed():
    fixed, grid = split_search_space({"a": [1, 2], "b": [3], "c": "x"})
    assert fixed == {"b": 3, "c": "x"}
    assert grid == {"a": [1, 2]}
    with pytest.raises(PipelineError, match="empty list"):
        split_search_space({"a": []})


def test_validation_uses_the_estimator_parameters_as_allowlist():
    defaults = {
        "n_estimators": 100,
        "learning_rate": 0.1,
        "boosting_type": "gbdt",
        "max_depth": -1,
        "verbose": None,
        "deterministic": False,
    }
    validate_hyperparameters(
        {"n_estimators": [50, 100], "learning_rate": 1, "boosting_type": "dart", "verbose": -1}, defaults, "lightgbm"
    )
    with pytest.raises(PipelineError, match="unknown hyperparameter 'n_estimator'.*did you mean n_estimators"):
        validate_hyperparameters({"n_estimator": 5}, defaults, "lightgbm")
    with pytest.raises(PipelineError, match="'max_depth' .* must be int.*got str 'deep'"):
        validate_hyperparameters({"max_depth": "deep"}, defaults, "lightgbm")
    with pytest.raises(PipelineError, match="must be int"):
        validate_hyperparameters({"max_depth": [3, 2.5]}, defaults, "lightgbm")
    with pytest.raises(PipelineError, match="must be bool"):
        validate_hyperparameters({"deterministic": 1}, defaults, "lightgbm")


def test_no_code_of_the_project_calls_eval_or_exec():
    import ast

    root = Path(__file__).resolve().parents[1]
    for path in [root / "main.py", *(root / "steps").glob("*.py"), *(root / "tabular_pipeline").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec"), (
                    f"{path.relative_to(root)}:{node.lineno} calls {node.func.id}"
                )


def test_param_file_lines_are_parsed_one_by_one():
    from tabular_pipeline.parameters.strings import parse_param_file

    content = "# tuned on 2026-11-01\nn_estimators=200\n\n learning_rate=0.1 \nobjective='binary'\n"
    assert parse_param_file(content) == {"n_estimators": 200, "learning_rate": 0.1, "objective": "binary"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("n_estimators=5\nhunter2-secret\n", "param_file line 2 is not name=value with a valid name"),
        ("token=sk live(abc)\n", "param_file line 1: the value of 'token' is refused"),
        ("my password is=hunter2\n", "param_file line 1 is not name=value with a valid name"),
        ("a=1\na=2\n", "param_file line 2: 'a' is given twice"),
    ],
)
def test_param_file_errors_name_the_line_never_the_content(content, expected):
    from tabular_pipeline.parameters.strings import parse_param_file

    with pytest.raises(PipelineError) as raised:
        parse_param_file(content)
    assert expected in str(raised.value)
    for secret in ("hunter2", "sk live", "abc"):
        assert secret not in str(raised.value)


def test_values_from_a_file_are_not_echoed_by_type_checks():
    with pytest.raises(PipelineError) as raised:
        validate_hyperparameters({"max_depth": "s3cret"}, {"max_depth": -1}, "lightgbm", unechoed={"max_depth"})
    assert "must be int" in str(raised.value) and "s3cret" not in str(raised.value)


def test_a_misspelt_parameter_of_main_is_named_not_listed_as_a_hyperparameter():
    from tabular_pipeline.orchestration.pipeline_inputs import check_not_a_misspelt_parameter

    with pytest.raises(PipelineError, match=r"'lable_column' is neither .* did you mean -P label_column=\.\.\.\?$"):
        check_not_a_misspelt_parameter(["lable_column"], "lightgbm")
    check_not_a_misspelt_parameter(["not_a_param", "alpha"], "lr")  # left to the hyperparameter check


def test_one_line_says_when_it_cut_a_message():
    from tabular_pipeline.errors import one_line

    assert one_line("short\nsecond line") == "short"
    cut = one_line("x" * 400)
    assert len(cut) == 300 and cut.endswith("…")
    assert one_line("y" * 300) == "y" * 300
