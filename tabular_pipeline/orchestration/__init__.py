"""Orchestration: the MLflow run around each step, the multistep workflow with its step cache,
fingerprints of data, parameters and code, and the processes a step starts."""
