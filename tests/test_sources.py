"""Unit tests of fetching sources: local paths, HTTP limits and safe archive extraction."""

import io
import tarfile
import zipfile

import pytest
from local_http import serve_routes

from tabular_pipeline.errors import PipelineError
from tabular_pipeline.sources import download_http, extract_archive, fetch_source, local_path, source_kind

CSV = b"a,label\n1,0\n2,1\n"


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("/abs/t.csv", "local"), ("rel/t.csv", "local"), ("file:///x/t.csv", "local"), ("https://h/t.csv", "http"),
        ("runs:/abc/raw", "mlflow"), ("s3://b/k", "mlflow"), ("mlflow-artifacts:/x", "mlflow"),
    ],
)
def test_source_kind(source, kind):
    assert source_kind(source) == kind


def test_local_paths_resolve_against_the_project(tmp_path):
    assert local_path("data/x.csv", tmp_path) == tmp_path / "data/x.csv"
    assert local_path("file:///tmp/a%20b.csv", tmp_path).as_posix() == "/tmp/a b.csv"


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as bundle:
        for name, body in entries.items():
            bundle.writestr(name, body)
    return path


def make_tar(path, entries):
    with tarfile.open(path, "w:gz") as bundle:
        for name, body in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            bundle.addfile(info, io.BytesIO(body))
    return path


def test_archives_extract_inside_the_destination(tmp_path):
    zipped = make_zip(tmp_path / "d.zip", {"train.csv": CSV, "test.csv": CSV})
    assert sorted(p.name for p in extract_archive(zipped, tmp_path / "z").iterdir()) == ["test.csv", "train.csv"]
    tarred = make_tar(tmp_path / "d.tgz", {"data/t.csv": CSV})
    assert (extract_archive(tarred, tmp_path / "t") / "data/t.csv").read_bytes() == CSV


@pytest.mark.parametrize("name", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv"])
@pytest.mark.parametrize("maker", [make_zip, make_tar])
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path, name, maker):
    archive = maker(tmp_path / ("slip.zip" if maker is make_zip else "slip.tgz"), {"ok.csv": CSV, name: CSV})
    with pytest.raises(PipelineError, match="outside the extraction folder"):
        extract_archive(archive, tmp_path / "out" / "inner")
    # Every entry is checked before anything is written, so not even the good entry lands.
    assert not any(tmp_path.rglob("evil.csv"))
    assert not any((tmp_path / "out").rglob("*.csv"))


def test_archive_size_cap(tmp_path):
    archive = make_zip(tmp_path / "big.zip", {"t.csv": b"0" * 5000})
    with pytest.raises(PipelineError, match="the cap is 1000"):
        extract_archive(archive, tmp_path / "o", max_bytes=1000)


def test_http_download_ok_404_cap_and_timeout(tmp_path):
    with serve_routes({"/t.csv": CSV, "/big.csv": b"x" * 5000}) as base:
        assert download_http(f"{base}/t.csv", tmp_path, 10, 1000).read_bytes() == CSV
        with pytest.raises(PipelineError, match="HTTP 404"):
            download_http(f"{base}/missing.csv", tmp_path, 10, 1000)
        with pytest.raises(PipelineError, match="the cap is 1000"):
            download_http(f"{base}/big.csv", tmp_path, 10, 1000)
    with serve_routes({"/slow.csv": CSV}, delay_s=3) as base:
        with pytest.raises(PipelineError, match="timed out"):
            download_http(f"{base}/slow.csv", tmp_path, 0.5, 1000)


def test_fetch_source_unpacks_archives_and_reports_missing_paths(tmp_path):
    archive = make_zip(tmp_path / "d.zip", {"train.csv": CSV, "test.csv": CSV})
    folder = fetch_source(str(archive), tmp_path / "w", tmp_path, 10, 10_000)
    assert (folder / "train.csv").exists()
    with pytest.raises(PipelineError, match="does not exist"):
        fetch_source("nope.csv", tmp_path / "w", tmp_path, 10, 10_000)
