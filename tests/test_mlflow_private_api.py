"""The one private MLflow API this project uses, pinned: an MLflow upgrade that moves or changes it
fails here, not in the promotion gate."""

import inspect


def test_the_flavor_backend_used_to_score_a_champion_in_its_own_environment():
    from mlflow.models.flavor_backend_registry import get_flavor_backend
    from mlflow.pyfunc.backend import PyFuncBackend

    assert list(inspect.signature(get_flavor_backend).parameters) == ["model_uri", "kwargs"]
    parameters = inspect.signature(PyFuncBackend.predict).parameters
    assert {"model_uri", "input_path", "output_path", "content_type"} <= set(parameters)
    assert {"env_manager", "install_mlflow"} <= set(inspect.signature(PyFuncBackend.__init__).parameters)
