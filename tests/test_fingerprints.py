"""Unit tests of the fingerprints behind step reuse."""

import hashlib
import os
import subprocess

import pytest

from tabular_pipeline.orchestration.fingerprints import (
    DIGEST_PIECE_BYTES,
    cache_key,
    canonical_params,
    canonical_value,
    code_version,
    digest_file,
    digest_path,
)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (100000, "100000"),
        ("100000", "100000.0"),
        (0.25, "0.25"),
        (True, "True"),
        ("true", "TRUE"),
        (1, 1.0),
        (" x ", "x"),
    ],
)
def test_equal_meanings_give_equal_canonical_text(left, right):
    assert canonical_value(left) == canonical_value(right)


def test_canonical_params_ignore_order_and_number_format():
    assert canonical_params({"seed": 1, "test_size": 0.25}) == canonical_params({"test_size": "0.25", "seed": "1"})
    assert canonical_params({"seed": 1}) != canonical_params({"seed": 2})


def test_cache_key_changes_with_each_component():
    base = cache_key("process", {"seed": 1}, "abc", "sha256:1")
    assert base == cache_key("process", {"seed": "1"}, "abc", "sha256:1")
    assert base != cache_key("train_basic", {"seed": 1}, "abc", "sha256:1")
    assert base != cache_key("process", {"seed": 2}, "abc", "sha256:1")
    assert base != cache_key("process", {"seed": 1}, "abd", "sha256:1")
    assert base != cache_key("process", {"seed": 1}, "abc", "sha256:2")


def test_digest_follows_content_and_names(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "train.csv").write_text("x\n1\n")
    first = digest_path(a)
    (a / "train.csv").write_text("x\n2\n")
    assert digest_path(a) != first
    assert digest_path(a / "train.csv").startswith("sha256:")


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        (1 << 16) - 1,
        1 << 16,
        (1 << 16) + 1,
        DIGEST_PIECE_BYTES - 1,
        DIGEST_PIECE_BYTES,
        2 * DIGEST_PIECE_BYTES + 5,
    ],
    ids=lambda n: f"{n} bytes",
)
def test_a_file_digest_is_the_sha256_of_its_bytes_whatever_its_size_against_the_read_piece(tmp_path, size):
    content = os.urandom(size)
    (tmp_path / "t.bin").write_bytes(content)
    assert digest_file(tmp_path / "t.bin") == hashlib.sha256(content).hexdigest()


def git(repo, *args):
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", *args], check=True, capture_output=True
    )


def test_code_version_is_commit_then_dirty_hash_then_nogit(tmp_path):
    (tmp_path / "step.py").write_text("print(1)\n")
    assert code_version(tmp_path).startswith("nogit.")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "x")
    clean = code_version(tmp_path)
    assert len(clean) == 40
    (tmp_path / "untracked.txt").write_text("ignored\n")
    assert code_version(tmp_path) == clean
    (tmp_path / "step.py").write_text("print(2)\n")
    dirty = code_version(tmp_path)
    assert dirty.startswith(clean + "+dirty.")
    (tmp_path / "step.py").write_text("print(3)\n")
    assert code_version(tmp_path) != dirty
