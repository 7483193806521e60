"""docs/architecture.md names every room of the package and every module in it, so a newcomer
finds a behaviour by its name in one hop; and docstrings name only modules that exist."""

from __future__ import annotations

import re

from conftest import PROJECT_DIR

PACKAGE = PROJECT_DIR / "tabular_pipeline"
DOC = PROJECT_DIR / "docs" / "architecture.md"


def named_in(text: str) -> set[str]:
    """Every `backticked` name in a piece of Markdown (code blocks left out)."""
    return set(re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)))


def room_rows() -> dict[str, str]:
    """Sub-package (`data/`...) -> its row of the doc's table of rooms."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `(\w+/)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def modules() -> list[str]:
    """Every module of the package, as a path below it (`orchestration/report.py`)."""
    return sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def test_every_sub_package_has_a_row():
    rooms = {f"{path.name}/" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert rooms == set(room_rows()), "a row per sub-package, and no row for one that is gone"


def test_every_module_is_named_in_its_rooms_row():
    rows, doc = room_rows(), DOC.read_text()
    missing = []
    for module in modules():
        parts = module.removesuffix(".py").split("/")
        if len(parts) == 1:  # a top-level module: named anywhere, as `paths.py`
            named = bool({module, f"tabular_pipeline/{module}"} & named_in(doc))
        else:
            row = named_in(rows.get(f"{parts[0]}/", ""))
            # Folders below a room are named in its row too (`automl/`, `autosklearn_worker/`).
            named = parts[-1] in row and all(f"{folder}/" in row for folder in parts[1:-1])
        if not named:
            missing.append(module)
    assert not missing, f"not named in docs/architecture.md: {missing}"


def test_docstrings_name_modules_that_exist():
    """A module a docstring or comment of the package points to ("lives in `spark_scoring`",
    "the module `x`") exists."""
    stems = {path.stem for path in PACKAGE.rglob("*.py")}
    pointer = re.compile(r"(?:lives in|module|modules) `(\w+)`|`(\w+)` module")
    for path in PACKAGE.rglob("*.py"):
        for names in pointer.findall(path.read_text()):
            name = next(filter(None, names))
            assert name in stems, f"{path.relative_to(PROJECT_DIR)} names a module `{name}` that does not exist"
