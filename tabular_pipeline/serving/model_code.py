"""Model code for MLflow's models-from-code logging: it only names the model class to serve."""

from mlflow.models import set_model

from tabular_pipeline.serving.model import TabularModel

set_model(TabularModel())
