"""Reusable building blocks of the tabular MLflow pipeline: one module per concern."""
