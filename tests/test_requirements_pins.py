"""Which distribution a served model pins for each library: the one installed, whatever its name."""

import sys
from importlib import metadata

import pytest

from tabular_pipeline.training.model_logging import booster_distributions, distribution_of


def test_the_installed_booster_distribution_is_pinned():
    [xgboost] = booster_distributions("xgboost")
    files = {str(file) for file in metadata.distribution(xgboost).files or []}
    assert "xgboost/__init__.py" in files, f"{xgboost} does not ship the xgboost module"
    assert booster_distributions("lightgbm") == ("lightgbm",)
    assert booster_distributions("lr") == ()


def dist_info(site, name: str, record: list[str], top_level: str) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"{line},,\n" for line in record))
    (info / "top_level.txt").write_text(top_level + "\n")


def test_of_two_distributions_claiming_a_module_the_one_that_installed_it_wins(tmp_path, monkeypatch):
    """`xgboost` and `xgboost-cpu` both ship the module `xgboost`; a model must pin whichever
    one put the imported files there (a fake pair here, to run in any environment)."""
    site = tmp_path / "site"
    (site / "fakeboost").mkdir(parents=True)
    (site / "fakeboost" / "__init__.py").write_text("")
    dist_info(site, "fakeboost", ["fakeboost-1.0.dist-info/METADATA"], "fakeboost")
    dist_info(site, "fakeboost_cpu", ["fakeboost/__init__.py", "fakeboost_cpu-1.0.dist-info/METADATA"], "fakeboost")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakeboost", raising=False)
    assert sorted(metadata.packages_distributions()["fakeboost"]) == ["fakeboost", "fakeboost_cpu"]
    assert distribution_of("fakeboost") == "fakeboost_cpu"


def test_of_two_distributions_recording_the_same_file_the_one_whose_hash_matches_wins(tmp_path, monkeypatch):
    """Installing `xgboost-cpu` over `xgboost` leaves both records listing `xgboost/__init__.py`:
    the file on disk is the last one's, and so is its recorded hash."""
    import base64
    import hashlib

    site = tmp_path / "site"
    (site / "hashboost").mkdir(parents=True)
    (site / "hashboost" / "__init__.py").write_text("VERSION = 'cpu'\n")

    def sha256(text: str) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()

    for name, content in (("hashboost", "VERSION = 'full'\n"), ("hashboost_cpu", "VERSION = 'cpu'\n")):
        dist_info(site, name, [f"{name}-1.0.dist-info/METADATA"], "hashboost")
        with (site / f"{name}-1.0.dist-info" / "RECORD").open("a") as record:
            record.write(f"hashboost/__init__.py,{sha256(content)},{len(content)}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "hashboost", raising=False)
    assert distribution_of("hashboost") == "hashboost_cpu"


def test_a_library_distributed_under_its_import_name_is_found_without_listing_every_distribution(monkeypatch):
    """Listing what every installed distribution provides takes about 0.5 s of each training step;
    LightGBM, the default booster, is found from its own file list."""

    def listed(*_args, **_kwargs):
        raise AssertionError("every installed distribution was listed")

    monkeypatch.setattr(metadata, "packages_distributions", listed)
    assert distribution_of("lightgbm") == "lightgbm"


def test_a_namespace_package_with_one_provider_is_that_provider(tmp_path, monkeypatch):
    """A namespace package has no file to compare with the distributions' records: its one
    provider is the answer, as it was before the lookup by name."""
    site = tmp_path / "site"
    (site / "fakespace" / "part").mkdir(parents=True)
    (site / "fakespace" / "part" / "__init__.py").write_text("")
    record = ["fakespace/part/__init__.py", "fakespace_dist-1.0.dist-info/METADATA"]
    dist_info(site, "fakespace_dist", record, "fakespace")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakespace", raising=False)
    assert distribution_of("fakespace") == "fakespace_dist"


@pytest.mark.skipif(sys.platform == "win32", reason="requirements.txt installs uvloop everywhere but Windows")
def test_uvicorn_serves_on_uvloop_and_httptools():
    """`mlflow models serve` (and `mlflow server`) start uvicorn with its automatic choices, which
    take uvloop and httptools when they import: requirements.txt installs both (bench/RESULTS.md,
    section 4, times the server with and without them)."""
    from uvicorn.config import Config

    async def app(scope, receive, send):  # a stand-in ASGI app: the choice does not depend on it
        pass

    # loop="auto", http="auto": what MLflow's uvicorn command lines leave them. No log_config:
    # uvicorn's own would replace the logging handlers of the process running the tests.
    config = Config(app, log_config=None)
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    loop = config.get_loop_factory()()
    try:
        assert type(loop).__module__.startswith("uvloop"), type(loop)
    finally:
        loop.close()
