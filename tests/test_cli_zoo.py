"""`modelzoo list` and `modelzoo info`: output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelzoo.cli import main


def test_list_prints_the_seed_table(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_fc512" in out and "90.8 (75.3)" in out and "hacnn*" in out
    assert "osnet_x1_0.msmt17_combineall" in out


def test_list_pattern_and_dataset_filter(capsys):
    assert main(["list", "osnet_ain*", "--dataset", "market"]) == 0
    out = capsys.readouterr().out
    assert "osnet_ain_x1_0" in out and "osnet_ain_x0_5 " not in out


def test_list_json_is_the_records(capsys):
    assert main(["list", "resnet50_fc512", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["checkpoints"]["market1501"]["results"][0]["rank1"] == 90.8
    sources = record["checkpoints"]["market1501"]["sources"]
    assert sources[1]["url"].endswith("resnet50_fc512_market_softmax.zip") and sources[1]["status"] == "dead"


def test_info_shows_every_checkpoint_and_source(capsys):
    assert main(["info", "mobilenetv2_x1_4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mobilenetv2_1dot4 (aliases: mobilenetv2_x1_4)")
    assert out.count("[http, dead since 2019]") == 3 and out.count("[gdrive, quota-limited]") == 3
    assert out.count("[http, archived copy, unverified]") == 3
    assert "mobilenetv2_1dot4_msmt.pth.tar" in out


def test_unknown_name_is_one_line_on_stderr_with_exit_code_1(capsys):
    assert main(["info", "osnet_x1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "osnet_x1_0" in err and "Traceback" not in err


def test_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "modelzoo", "list", "--no-such-flag"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--no-such-flag" in result.stderr and "--help" in result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"]])
def test_help_exits_0(argv):
    result = subprocess.run([sys.executable, "-m", "modelzoo", *argv], capture_output=True, text=True)
    assert result.returncode == 0 and "modelzoo" in result.stdout
