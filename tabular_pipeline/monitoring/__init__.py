"""Monitoring: the training profile every model carries, the drift `predict` measures against it
(per column PSI, missing share, unseen categories, JS and Wasserstein distances; per table the
share of drifted columns), the model's realized and estimated performance, and a report a person opens."""
