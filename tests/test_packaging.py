"""A non-editable install (a wheel) carries the manifest and the command works outside the tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: an in-tree build/ folder could hold stale files.
    source = tmp_path_factory.mktemp("source") / "reid-modelzoo"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(REPO, source, ignore=junk)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        cwd=out,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (path,) = out.glob("reid_modelzoo-*.whl")
    return path


def test_wheel_contains_package_manifest_and_entry_point(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "modelzoo/manifest_data/resnet50_fc512.json" in names
    assert "modelzoo/manifest_data/README.md" in names
    assert "modelzoo/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "modelzoo = modelzoo.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_lists_the_zoo_from_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import modelzoo, sys; print(modelzoo.__file__); from modelzoo.cli import main; sys.exit(main(['list']))"
    result = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    first, *table = result.stdout.splitlines()
    assert first.startswith(str(target)), "the installed copy, not the source tree, must be imported"
    assert any(line.startswith("resnet50_fc512 ") and "90.8 (75.3)" in line for line in table)
    assert sum(1 for line in table if line.split() and line.split()[0].rstrip("*") in {
        "resnet50", "resnet50_fc512", "densenet121_fc512", "se_resnet50_fc512", "shufflenet",
        "squeezenet1_0_fc512", "mobilenetv2_1dot0", "mobilenetv2_1dot4", "resnet50mid", "mlfn", "hacnn",
    }) == 11
