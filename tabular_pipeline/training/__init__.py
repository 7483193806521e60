"""Training: scikit-learn pipelines per algorithm and task, searches over hyperparameters,
AutoML tools (`automl`), and logging a fitted pipeline as an MLflow model."""
