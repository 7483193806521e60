"""Every folder and file of the project that the code refers to, resolved once."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
MLPROJECT_FILE = PROJECT_DIR / "MLproject"
# The only code a logged model carries.
SERVING_DIR = PACKAGE_DIR / "serving"
# A nested MLflow project: auto-sklearn on Python 3.9 in its own virtualenv.
AUTOSKLEARN_WORKER_DIR = PACKAGE_DIR / "training" / "automl" / "autosklearn_worker"
