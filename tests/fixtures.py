"""Tiny tables built in the tests: nothing is ever downloaded."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed_frame(rows: int = 80, task: str = "binary", seed: int = 0) -> pd.DataFrame:
    """A small table with numbers, NaNs, strings, a boolean, a constant and an ID column."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.integers(0, 5, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows),
            "x1": x1,
            "x2": x2,
            "colour": colour,
            "member": rng.random(rows) > 0.5,
            "constant": 1,
        }
    )
    frame.loc[::7, "x1"] = np.nan
    frame.loc[::9, "colour"] = None
    signal = x1 + (colour == "red") + 0.3 * x2
    signal = np.nan_to_num(signal)
    if task == "binary":
        frame["label"] = np.where(signal > np.median(signal), "good", "bad")
    elif task == "multiclass":
        frame["label"] = pd.cut(signal, 3, labels=["low", "mid", "high"]).astype(str)
    else:
        frame["label"] = signal * 10 + rng.normal(size=rows)
    return frame
