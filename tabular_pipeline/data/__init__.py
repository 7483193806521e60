"""Data: fetching a source (local, HTTP, MLflow URIs, archives), reading and validating tables,
splitting them, profiling them, screening out useless columns, and generated tables."""
