"""Unit tests of fetching sources: local paths, HTTP limits and safe archive extraction."""

import io
import tarfile
import zipfile

import pytest
from local_http import serve_routes

from tabular_pipeline.data.archives import extract_archive
from tabular_pipeline.data.downloads import download_http
from tabular_pipeline.data.sources import fetch_source
from tabular_pipeline.data.uris import local_path, source_kind
from tabular_pipeline.errors import PipelineError

CSV = b"a,label\n1,0\n2,1\n"


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("/abs/t.csv", "local"),
        ("rel/t.csv", "local"),
        ("file:///x/t.csv", "local"),
        ("https://h/t.csv", "http"),
        ("runs:/abc/raw", "mlflow"),
        ("s3://b/k", "mlflow"),
        ("mlflow-artifacts:/x", "mlflow"),
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
    with pytest.raises(PipelineError, match=r"unpacks to 5000 bytes; expected at most 1000 \(set -P max_mb\)"):
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


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.zip", b"PK\x03\x04 this is not a zip"),
        ("broken.tar.gz", b"\x1f\x8b\x08\x00 truncated gzip"),
        ("broken.tar", b"x" * 700),
    ],
)
def test_corrupt_archives_are_one_clear_error(tmp_path, name, content):
    archive = tmp_path / name
    archive.write_bytes(content)
    with pytest.raises(
        PipelineError, match=f"archive {name} is corrupt or unreadable .*; expected a valid zip or tar archive"
    ):
        extract_archive(archive, tmp_path / "out")


def test_a_truncated_zip_member_is_one_clear_error(tmp_path):
    whole = make_zip(tmp_path / "whole.zip", {"t.csv": CSV * 1000}).read_bytes()
    damaged = bytearray(whole)
    damaged[60:90] = b"\0" * 30  # inside the compressed data: the CRC check fails on extraction
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    with pytest.raises(PipelineError, match="is corrupt or unreadable"):
        extract_archive(tmp_path / "damaged.zip", tmp_path / "out")


@pytest.mark.parametrize(
    "source",
    ["https://alice:hunter2@example.com/t.csv", "http://token@example.com/t.csv", "s3://KEY:SECRET@bucket/t.csv"],
)
def test_urls_with_credentials_are_refused_without_echoing_them(tmp_path, source):
    with pytest.raises(PipelineError) as raised:
        fetch_source(source, tmp_path, tmp_path, 10, 1000)
    message = str(raised.value)
    assert "carries credentials in the URL" in message and "~/.netrc" in message
    for secret in ("alice", "hunter2", "token", "KEY", "SECRET"):
        assert secret not in message


def test_presigned_urls_are_recorded_without_their_signature():
    from tabular_pipeline.data.uris import redact_source, scrub

    signed = "https://bucket.example.com/t.csv?X-Amz-Signature=abc123&X-Amz-Expires=60"
    assert redact_source(signed) == "https://bucket.example.com/t.csv"
    assert redact_source("/data/t.csv?x") == "/data/t.csv?x", "local paths are left alone"
    assert "abc123" not in scrub(f"failed to read {signed}", signed)


def test_redirects_to_metadata_or_link_local_hosts_are_refused_before_connecting(tmp_path):
    redirects = {
        "/to-link-local.csv": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/to-metadata.csv": "http://metadata.google.internal/computeMetadata/v1/",
        "/to-file.csv": "file:///etc/passwd",
        "/hop.csv": "/t.csv",
    }
    with serve_routes({"/t.csv": CSV}, redirects=redirects) as base:
        assert download_http(f"{base}/hop.csv", tmp_path, 10, 1000).read_bytes() == CSV, (
            "ordinary redirects are followed"
        )
        for path in ("/to-link-local.csv", "/to-metadata.csv"):
            with pytest.raises(PipelineError, match="refused: its host is a cloud metadata or link-local address"):
                download_http(f"{base}{path}", tmp_path, 2, 1000)
        with pytest.raises(PipelineError, match="redirects to a non-HTTP address"):
            download_http(f"{base}/to-file.csv", tmp_path, 2, 1000)
    for address in (
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[fd00:ec2::254]",
        "100.100.100.200",
    ):
        with pytest.raises(PipelineError, match="refused"):
            download_http(f"http://{address}/latest/meta-data/", tmp_path, 2, 1000)


def test_metadata_addresses_are_recognised_however_they_are_written():
    from tabular_pipeline.data.downloads import is_metadata_address

    for address in ("169.254.169.254", "::ffff:169.254.169.254", "2002:a9fe:a9fe::1", "fe80::1%eth0", "fd00:ec2::254"):
        assert is_metadata_address(address), address
    for address in ("127.0.0.1", "10.0.0.5", "::1", "::ffff:10.0.0.5", "2606:4700::1111"):
        assert not is_metadata_address(address), address
