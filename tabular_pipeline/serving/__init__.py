"""Serving: the pyfunc model every training path logs, and the estimators its pipeline holds.

This sub-package is the only code a logged model carries (`code_paths`), so it imports nothing
from the rest of the project.
"""
