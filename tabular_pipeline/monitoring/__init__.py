"""Monitoring: the training profile every model carries, and the drift `predict` measures
against it (per column PSI, missing share, unseen categories), with a report a person opens."""
