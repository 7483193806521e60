"""One thin click command per MLproject entry point.

Importing this package first checks that the Python running a step has the project's packages
(`tabular_pipeline.interpreter`), before any step module imports them, and has the step's process
end without the interpreter's last garbage collection (`tabular_pipeline.process_exit`).
"""

from tabular_pipeline.interpreter import ensure_project_interpreter
from tabular_pipeline.process_exit import skip_final_collection

ensure_project_interpreter()
skip_final_collection("steps")
