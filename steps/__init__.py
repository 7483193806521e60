"""One thin click command per MLproject entry point.

Importing this package first checks that the Python running a step has the project's packages
(`tabular_pipeline.interpreter`), before any step module imports them.
"""

from tabular_pipeline.interpreter import ensure_project_interpreter

ensure_project_interpreter()
