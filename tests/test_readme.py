"""The README's zoo table is generated from the manifest and must not go stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _updater():
    spec = importlib.util.spec_from_file_location("update_readme", REPO / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_zoo_table_matches_manifest():
    updater = _updater()
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert updater.START in text and updater.END in text
    assert updater.updated(text) == text, "README.md is stale: run `python scripts/update_readme.py`"


def test_readme_table_shows_every_seed_number():
    updater = _updater()
    block = updater.render()
    assert "| resnet50_fc512 | 24.6 | softmax | (256, 128) | 90.8 (75.3) | 81.0 (64.0) | 69.6 (38.4) |" in block
    assert "| hacnn* | 3.7† |" in block


def test_readme_shows_fastreids_zoo_as_its_own_tables():
    block = _updater().render()
    torchreid, fastreid = block.split("**fast-reid**")
    assert "bot_r50" not in torchreid and "resnet50_fc512" not in fastreid
    assert "| bot_s50 | softmax+triplet | (256, 128) | 95.2 / 88.7 / 66.9 | 90.0 / 80.13 / 45.8 | 80.8 / 59.9 / 16.3 |" \
        in fastreid
    assert "| `bot_r50_ibn.veriwild` | veriwild (medium) | (256, 256) | 95.1 | - | 83.5 | 61.2 |" in fastreid
    assert "| `bot_r50_ibn.vehicleid` | vehicleid (small) | (256, 256) | 86.6 | 97.9 | - | - |" in fastreid


def test_readme_names_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    assert "make test" in (REPO / ".ci" / "run").read_text()
