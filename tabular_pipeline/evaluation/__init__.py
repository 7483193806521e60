"""Evaluation: test metrics with the same names for every model, plots, and the model card."""
