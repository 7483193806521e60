"""The README's code blocks, so tests run the examples a user copies."""

from __future__ import annotations

import re

from conftest import PROJECT_DIR

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def readme_blocks(language: str) -> list[str]:
    """The fenced code blocks of README.md in `language` (bash, python...), in order."""
    text = (PROJECT_DIR / "README.md").read_text()
    return [body for lang, body in FENCE.findall(text) if lang == language]


def readme_block_containing(language: str, needle: str) -> str:
    """The one `language` block of the README that contains `needle`."""
    [block] = [body for body in readme_blocks(language) if needle in body]
    return block
