"""What `main` checks and prepares before any step runs: parameter files, hyperparameters, the
training choice, and the source."""

from __future__ import annotations

import os
from pathlib import Path

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.orchestration.workflow import StepSpec
from tabular_pipeline.parameters.hyperparameters import validate_hyperparameters
from tabular_pipeline.parameters.strings import (
    MAX_PARAM_STRING_LENGTH,
    format_param_string,
    parse_extra_options,
    parse_param_file,
    parse_param_string,
)
from tabular_pipeline.paths import PROJECT_DIR
from tabular_pipeline.training.automl import check_tool


def read_param_file(path_text: str) -> dict:
    """The parameters in DolphinScheduler's `param_file` (one `name=value` per line), {} if unset."""
    if not path_text.strip():
        return {}
    path = Path(path_text.strip()).expanduser()
    path = path if path.is_absolute() else PROJECT_DIR / path
    if not path.is_file():
        raise PipelineError(
            f"param_file {str(path)!r} does not exist; expected a text file with one name=value per line"
        )
    if path.stat().st_size > MAX_PARAM_STRING_LENGTH:
        raise PipelineError(
            f"param_file {path} is {path.stat().st_size} bytes; at most {MAX_PARAM_STRING_LENGTH} are allowed"
        )
    try:
        return parse_param_file(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PipelineError(f"param_file {path} is not UTF-8 text; expected one name=value per line") from None


def collect_hyperparameters(
    params: str, search_params: str, extra_args: list[str], param_file: str = ""
) -> tuple[dict, dict, set[str]]:
    """Parse `param_file`, `params`, `search_params` and undeclared `--name value` overrides.

    Later sources win: the file, then `params`, then the overrides.

    Returns:
        (fixed parameters including overrides, search parameters, names whose values came from the file).
    """
    fixed = read_param_file(param_file)
    from_file = set(fixed)
    given = parse_param_string(params, "params")
    given.update(parse_extra_options(extra_args))
    fixed.update(given)
    return fixed, parse_param_string(search_params, "search_params"), from_file - set(given)


def hand_over_source(data_path: str) -> str:
    """The source to pass to `download` as a parameter: a presigned URL loses its query string
    there (MLflow records every parameter), and travels to the step in the environment instead."""

    from tabular_pipeline.data.uris import SIGNED_SOURCE_ENV, redact_source

    recorded = redact_source(data_path)
    if recorded != data_path:
        os.environ[SIGNED_SOURCE_ENV] = data_path
    return recorded


def check_input_exists(data_path: str) -> None:
    """Refuse, before any step runs, a URL with credentials or a local table that is not there."""
    from tabular_pipeline.data.uris import check_no_credentials, local_path, source_kind

    check_no_credentials(data_path)
    if not data_path:
        raise PipelineError("data_path is empty; expected a .csv file, a folder with train.csv and test.csv, or a URI")
    if source_kind(data_path) == "local" and not local_path(data_path, PROJECT_DIR).exists():
        raise PipelineError(
            f"data_path {local_path(data_path, PROJECT_DIR)} does not exist; expected a .csv or .parquet file "
            "or a folder with train.csv and test.csv (relative paths are read from the project folder)"
        )


def is_glob(data_path: str) -> bool:
    """Whether a path holds glob characters (Spark reads it as a pattern)."""
    return any(character in data_path for character in "*?[")


def check_spark_input(data_path: str) -> None:
    """The Spark engine's input check before any step: a local path or glob must match something;
    other filesystems (hdfs://, s3a://...) are checked by `process` on the cluster."""
    import glob

    from tabular_pipeline.data.uris import check_no_credentials, local_path, source_kind

    check_no_credentials(data_path)
    if not data_path:
        raise PipelineError("data_path is empty; expected a CSV or Parquet file, a folder of them or a glob")
    if source_kind(data_path) != "local":
        return
    path = local_path(data_path, PROJECT_DIR)
    if not (glob.glob(str(path)) if is_glob(data_path) else path.exists()):
        raise PipelineError(
            f"data_path {path} matches nothing; expected a CSV or Parquet file, a folder of them or a glob "
            "(relative paths are read from the project folder)"
        )


def spark_splits_exist(process_run) -> bool:
    """Whether a Spark process run's split folder is still there (checked for local folders only:
    a cluster's store is trusted, and a missing split then fails the train step in one line)."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    location = urlparse(process_run.data.tags.get("pipeline.split_uri", ""))
    return location.scheme != "file" or Path(url2pathname(location.path)).is_dir()


def pipeline_name(options: dict) -> str:
    """The main run's name in the UI, from the options as given (a run that fails on them is named
    too): `main: lightgbm on breast_cancer.csv`, `main: xgboost on Spark on data.csv`."""
    from tabular_pipeline.data.uris import redact_source

    what = (options["tool"].strip() or options["algorithm"].strip()).lower()
    where = " on Spark" if options["engine"].strip().lower() == "spark" else ""
    table = redact_source(options["data_path"].strip()).rstrip("/").rsplit("/", 1)[-1] or "data"
    return f"main: {what}{where} on {table}"[:250]


def check_training_choice(options: dict, fixed: dict, search: dict, unechoed: set[str]) -> str:
    """Validate the algorithm or AutoML tool, and hyperparameter names, before any step runs.

    AutoML tools search their own spaces, so a `search_params` for them is refused rather than
    silently dropped.
    """
    from tabular_pipeline.training.algorithms import allowed_hyperparameters, normalise_algorithm

    tool = options["tool"].strip().lower().replace("-", "")
    if options.get("engine", "pandas") == "spark":
        return check_spark_training_choice(options, tool, fixed, search, unechoed)
    if tool:
        tool = check_tool(tool)
        if search:
            raise PipelineError(
                f"search_params is not used by the AutoML tool {tool} ({', '.join(search)}); expected it empty: "
                "the tool searches its own space within time_budget (restrict it with params, e.g. estimator_list "
                "for flaml)"
            )
        # Only the named tool's checks: FLAML's and auto-sklearn's modules load pandas and numpy.
        if tool == "flaml":
            from tabular_pipeline.training.automl.flaml_search import check_flaml_params

            check_flaml_params(fixed, unechoed)
        elif tool == "autogluon":
            from tabular_pipeline.training.automl.autogluon_settings import check_autogluon_params

            check_autogluon_params(fixed, unechoed)
        else:
            from tabular_pipeline.training.automl.autosklearn_search import check_autosklearn_params

            check_autosklearn_params(fixed, options["time_budget"], unechoed)
        return "train_automl"
    algorithm = normalise_algorithm(options["algorithm"])
    if fixed or search:
        # Only then: building the estimators to list their parameters imports the library (1.5 s for LightGBM).
        # The task is known only after `process`; any name valid for either task passes here.
        allowed = {**allowed_hyperparameters(algorithm, "regression"), **allowed_hyperparameters(algorithm, "binary")}
        check_not_a_misspelt_parameter([name for name in fixed if name not in allowed], algorithm)
        validate_hyperparameters({**fixed, **search}, allowed, algorithm, unechoed - set(search))
    return "train_basic"


def check_spark_training_choice(options: dict, tool: str, fixed: dict, search: dict, unechoed: set[str]) -> str:
    """On the Spark engine: train_basic only, the algorithm known there, Spark's hyperparameter names."""
    from tabular_pipeline.spark.algorithms import allowed_hyperparameters, check_spark_algorithm
    from tabular_pipeline.training.algorithms import normalise_algorithm

    if tool:
        raise PipelineError(
            f"the AutoML tool {tool} trains on pandas only; expected -P engine=pandas for AutoML, or "
            "-P algorithm=xgboost|lr|svm with -P engine=spark"
        )
    algorithm = normalise_algorithm(options["algorithm"])
    check_spark_algorithm(algorithm, "binary")  # the task is known after process; svm is checked then
    allowed = allowed_hyperparameters(algorithm)
    check_not_a_misspelt_parameter([name for name in fixed if name not in allowed], algorithm)
    validate_hyperparameters({**fixed, **search}, allowed, f"{algorithm} on Spark", unechoed - set(search))
    return "train_basic"


def check_not_a_misspelt_parameter(unknown: list[str], algorithm: str) -> None:
    """An undeclared `-P` name is taken as a hyperparameter; one that is not, but is close to a
    declared parameter of `main` (`lable_column`), is most likely that parameter misspelt."""
    import difflib

    from tabular_pipeline.parameters.entry_points import declared_parameters

    declared = list(declared_parameters("main"))
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1, cutoff=0.8)
        if close:
            raise PipelineError(
                f"'{name}' is neither a parameter of main nor a hyperparameter of {algorithm}; did you mean "
                f"-P {close[0]}=...?"
            )


def training_spec(
    entry_point: str, options: dict, fixed: dict, search: dict, data_uri: str, data_digest: str | None
) -> StepSpec:
    """The train step's parameters; the data URI is left out of its cache key (its digest counts)."""
    if entry_point == "train_automl":
        key_params = {
            "tool": check_tool(options["tool"]),
            "params": format_param_string(fixed),
            "label_column": options["label_column"],
            "time_budget": options["time_budget"],
            "task": options["task"],
            "seed": options["seed"],
            "test_size": options["test_size"],
        }
    else:
        from tabular_pipeline.training.algorithms import normalise_algorithm

        key_params = {
            "algorithm": normalise_algorithm(options["algorithm"]),
            "params": format_param_string(fixed),
            "search_params": format_param_string(search),
            "label_column": options["label_column"],
            "task": options["task"],
            "seed": options["seed"],
            "cv": options["cv"],
            "test_size": options["test_size"],
        }
    run_params = {"n_jobs": options["n_jobs"]} if entry_point == "train_basic" else {}
    if options.get("engine") == "spark":
        # Where it runs does not change what it learns: the master stays out of the cache key.
        key_params["engine"] = "spark"
        run_params["spark_master"] = options["spark_master"]
    # n_jobs changes how fast the search runs, not what it finds, so it stays out of the cache key.
    return StepSpec(entry_point, {"data_path": data_uri, **key_params, **run_params}, key_params, data_digest)
