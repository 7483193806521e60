"""Headless Chromium, as a person would look at a page: a screenshot, and the DOM after scripts ran."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

# Chromium's background services try the network at start; this machine has none to offer.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed; `make test` installs it"
    return found


def _run(url: str, *arguments: str, budget_ms: int) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *arguments, url],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, width: int = 1400, height: int = 1800, budget_ms: int = 10_000) -> Path:
    """A PNG of the page as rendered after `budget_ms` of virtual time."""
    _run(url, f"--screenshot={path}", f"--window-size={width},{height}", budget_ms=budget_ms)
    assert path.is_file() and path.stat().st_size > 0
    return path


def rendered_dom(url: str, budget_ms: int = 10_000) -> str:
    """The page's DOM after its scripts ran for `budget_ms` of virtual time."""
    return _run(url, "--dump-dom", budget_ms=budget_ms)


def inked_share(png: Path) -> float:
    """The share of the screenshot's pixels that are not near-white: a blank page is about 0."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    return float((pixels < 235).mean())
