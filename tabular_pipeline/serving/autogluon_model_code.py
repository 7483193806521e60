"""Model code for MLflow's models-from-code logging of an AutoGluon model."""

from mlflow.models import set_model

from tabular_pipeline.serving.autogluon import AutoGluonModel

set_model(AutoGluonModel())
