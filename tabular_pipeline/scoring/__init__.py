"""Scoring: batch prediction on the pandas engine (streaming) and the Spark engine, and outputs
that appear at their target only when complete."""
