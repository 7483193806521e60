"""Logging a fitted pipeline as an MLflow model that serves raw rows."""

from __future__ import annotations

import json
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

import pandas as pd

from tabular_pipeline.monitoring.profile import PROFILE_ARTIFACT, PROFILE_FILE
from tabular_pipeline.paths import PACKAGE_DIR, SERVING_DIR
from tabular_pipeline.serving.model import (
    PIPELINE_ARTIFACT,
    PROBABILITIES_PARAM,
    TRUSTED_TYPES_ARTIFACT,
    WHOLE_NUMBER_COLUMNS,
)

MODEL_CODE = SERVING_DIR / "model_code.py"
AUTOGLUON_MODEL_CODE = SERVING_DIR / "autogluon_model_code.py"
INPUT_EXAMPLE_ROWS = 5
BASE_DISTRIBUTIONS = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy", "cloudpickle")
# What an AutoGluon predictor loads with; its booster libraries are added by the models it keeps.
AUTOGLUON_DISTRIBUTIONS = ("autogluon.tabular", "autogluon.core", "autogluon.common", "autogluon.features", "pyarrow")
# Booster libraries by import name: `xgboost` comes from `xgboost` or `xgboost-cpu`, whichever is installed.
ALGORITHM_MODULES = {"lightgbm": "lightgbm", "xgboost": "xgboost"}


def trusted_types_of(model) -> list[str]:
    """The non-default types in `model` that skops must be told to trust when loading.

    They are the types of the object this process just built, not of a file from elsewhere.
    """
    import skops.io as sio

    return sorted(sio.get_untrusted_types(data=sio.dumps(model)))


def distribution_of(module: str) -> str:
    """The installed distribution that provides the importable `module`.

    Several may claim the same import name (`xgboost` and `xgboost-cpu` both ship `xgboost`, and
    installing one over the other leaves both records); the one whose recorded hash matches the
    module's file on disk wins, then one that records the file at all.
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)  # where it would load from, without importing it
    except (ImportError, ValueError):
        spec = None
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    # Most libraries are distributed under their import name: that one's file list is read first,
    # where listing what every installed distribution provides takes about 0.5 s.
    try:
        named = metadata.distribution(module)
    except metadata.PackageNotFoundError:
        named = None
    if named is not None and origin is not None and recorded_file(named, origin, hashed=True):
        return named.metadata["Name"]
    candidates = metadata.packages_distributions().get(module, [])
    if len(candidates) == 1:
        return candidates[0]
    for hashed in (True, False):
        for name in candidates:
            if origin is not None and recorded_file(metadata.distribution(name), origin, hashed):
                return name
    if candidates:
        return candidates[0]
    raise LookupError(f"no installed distribution provides the module {module!r}")


def recorded_file(distribution: metadata.Distribution, origin: Path, hashed: bool) -> bool:
    """Whether `distribution` recorded the file `origin` among its files and, with `hashed`, with
    the SHA-256 of the file now on disk."""
    import base64
    import hashlib

    resolved = origin.resolve()
    for file in distribution.files or []:
        if file.name != origin.name or Path(distribution.locate_file(file)).resolve() != resolved:
            continue
        if not hashed:
            return True
        if file.hash is not None and file.hash.mode == "sha256":
            digest = base64.urlsafe_b64encode(hashlib.sha256(resolved.read_bytes()).digest()).rstrip(b"=")
            return digest.decode() == file.hash.value
        return False
    return False


def booster_distributions(algorithm: str) -> tuple[str, ...]:
    """The distribution behind the algorithm's booster library, if it has one."""
    module = ALGORITHM_MODULES.get(algorithm)
    return (distribution_of(module),) if module else ()


def serving_code(scratch: Path) -> Path:
    """A copy of `tabular_pipeline/serving` alone, under a `tabular_pipeline` folder without an
    `__init__.py`: what a model carries as its `code_paths`.

    Where the model is served, that folder is a namespace package holding only `serving`, so the
    model imports `tabular_pipeline.serving.*` and nothing else of the project; where the project
    itself is importable, its regular package wins and provides the same modules.
    """
    import shutil

    shipped = scratch / PACKAGE_DIR.name
    shutil.copytree(SERVING_DIR, shipped / SERVING_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return shipped


def pinned_requirements(distributions: tuple[str, ...]) -> list[str]:
    """`name==version` for each installed distribution: the serving env matches the training one."""
    return [f"{name}=={metadata.version(name)}" for name in distributions]


def model_signature(model, train_features: pd.DataFrame, optional_columns: set[str] | None = None):
    """Input types from the whole training frame (optional columns included), outputs and params
    from the model's answer on a few rows (MLflow's own inference takes 14 s on 225k rows).

    `optional_columns` marks columns optional whatever the frame holds (the frame is then a sample).
    """
    from mlflow.models import ModelSignature, infer_signature

    from tabular_pipeline.data.schemas import frame_schema

    example = train_features.head(INPUT_EXAMPLE_ROWS)
    with warnings.catch_warnings():
        # The hint concerns integer *outputs* (class labels); integer features are already float64.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        sampled = infer_signature(example, model.predict(example), params={PROBABILITIES_PARAM: False})
    from mlflow.types.schema import AnyType, ColSpec, Schema

    whole = set(whole_number_columns(train_features))
    optional = optional_columns or set()
    inputs = Schema(
        [
            ColSpec(
                AnyType() if spec.name in whole else spec.type, spec.name, spec.required and spec.name not in optional
            )
            for spec in frame_schema(train_features).inputs
        ]
    )
    return ModelSignature(inputs=inputs, outputs=sampled.outputs, params=sampled.params)


def whole_number_columns(train_features: pd.DataFrame) -> list[str]:
    """The numeric columns holding whole numbers only (missing values aside), such as counts.

    Their signature type is `any`: pandas reads them as int64, or float64 where a value is missing,
    and MLflow's schema enforcement refuses int64 in a column declared double and float64 in one
    declared long. The model itself turns them into the float64 it was trained on
    (`serving.model.as_trained`), refusing text there with one clear message.
    """
    from pandas.api import types as ptypes

    whole = []
    for name in train_features.columns:
        values = train_features[name]
        if ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values):
            present = values.dropna()
            if len(present) and bool((present % 1 == 0).all()):
                whole.append(str(name))
    return whole


def log_served_model(
    model_code: Path,
    artifacts: dict[str, str],
    signature,
    train_features: pd.DataFrame,
    requirements: list[str],
    profile: dict | None,
    name: str,
):
    """Log a models-from-code pyfunc that carries `serving/` and `artifacts` (plus the profile)."""
    import mlflow

    with tempfile.TemporaryDirectory() as scratch:
        if profile is not None:
            profile_file = Path(scratch) / PROFILE_FILE
            profile_file.write_text(json.dumps(profile))
            artifacts = {**artifacts, PROFILE_ARTIFACT: str(profile_file)}
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(model_code),
            artifacts=artifacts,
            code_paths=[str(serving_code(Path(scratch)))],
            signature=signature,
            input_example=train_features.head(INPUT_EXAMPLE_ROWS),
            pip_requirements=requirements,
            model_config={WHOLE_NUMBER_COLUMNS: whole_number_columns(train_features)},
        )


def log_pipeline_model(
    model,
    train_features: pd.DataFrame,
    algorithm: str,
    profile: dict | None = None,
    name: str = "model",
    optional_columns: set[str] | None = None,
):
    """Log `model` with a signature and input example inferred from the raw training columns.

    Args:
        model: a fitted scikit-learn pipeline.
        train_features: training rows without the label (dtypes as served).
        algorithm: which booster library the serving env needs, if any.
        profile: the training profile (`monitoring.profile`), carried as the artifact `predict` checks drift with.
        name: the model's name within the run.
        optional_columns: columns that may be missing in served rows whatever `train_features` holds.

    Returns:
        The `mlflow.models.model.ModelInfo` (its `model_uri` is what `register` takes).
    """
    import skops.io as sio

    signature = model_signature(model, train_features, optional_columns)
    with tempfile.TemporaryDirectory() as scratch:
        pipeline_file = Path(scratch) / "pipeline.skops"
        types_file = Path(scratch) / "trusted_types.json"
        sio.dump(model, pipeline_file)
        types_file.write_text(json.dumps(trusted_types_of(model)))
        artifacts = {PIPELINE_ARTIFACT: str(pipeline_file), TRUSTED_TYPES_ARTIFACT: str(types_file)}
        requirements = pinned_requirements(BASE_DISTRIBUTIONS + booster_distributions(algorithm))
        return log_served_model(MODEL_CODE, artifacts, signature, train_features, requirements, profile, name)


def log_autogluon_model(
    estimator,
    predictor_dir: Path,
    libraries: list[str],
    train_features: pd.DataFrame,
    profile: dict | None = None,
    name: str = "model",
):
    """Log a fitted AutoGluon predictor (its deployment copy) as a model that serves raw rows.

    Args:
        estimator: the predictor's scikit-learn view (`serving.autogluon.as_estimator`), for the signature.
        predictor_dir: the deployment copy's folder; it travels as the model's `predictor` artifact.
        libraries: the booster libraries its models import (lightgbm, catboost, xgboost).
        train_features: training rows without the label (dtypes as served).
        profile: the training profile, as for `log_pipeline_model`.
        name: the model's name within the run.

    Returns:
        The `mlflow.models.model.ModelInfo`.
    """
    from tabular_pipeline.serving.autogluon import PREDICTOR_ARTIFACT

    signature = model_signature(estimator, train_features)
    distributions = BASE_DISTRIBUTIONS + AUTOGLUON_DISTRIBUTIONS + tuple(distribution_of(lib) for lib in libraries)
    return log_served_model(
        AUTOGLUON_MODEL_CODE,
        {PREDICTOR_ARTIFACT: str(predictor_dir)},
        signature,
        train_features,
        pinned_requirements(distributions),
        profile,
        name,
    )


def log_saved_model(model_dir: Path, profile: dict | None = None, name: str = "model"):
    """Log a model another environment saved (auto-sklearn's, on Python 3.9) as a logged model of
    the active run, exactly as `log_model` would: same URIs, same registry behaviour.

    Args:
        model_dir: a local MLflow model folder (MLmodel, environment files, artifacts).
        name: the model's name within the run.

    Returns:
        The `models:/<model id>` URI that `register` takes.
    """
    import mlflow
    import yaml
    from mlflow.entities import LoggedModelOutput

    if profile is not None:
        (model_dir / "artifacts").mkdir(exist_ok=True)
        (model_dir / "artifacts" / PROFILE_FILE).write_text(json.dumps(profile))
    run_id = mlflow.active_run().info.run_id
    client = mlflow.MlflowClient()
    logged = mlflow.initialize_logged_model(name=name, source_run_id=run_id, model_type="autosklearn")
    try:
        client.log_outputs(run_id=run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
        mlmodel_file = model_dir / "MLmodel"
        description = yaml.safe_load(mlmodel_file.read_text())
        description.update(
            model_id=logged.model_id, model_uuid=logged.model_id, run_id=run_id, artifact_path=logged.artifact_location
        )
        mlmodel_file.write_text(yaml.safe_dump(description, sort_keys=False))
        client.log_model_artifacts(logged.model_id, str(model_dir))
    except BaseException:
        mlflow.finalize_logged_model(logged.model_id, "FAILED")
        raise
    mlflow.finalize_logged_model(logged.model_id, "READY")
    return f"models:/{logged.model_id}"
