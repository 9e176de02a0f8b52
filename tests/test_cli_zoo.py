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


def test_list_shows_the_two_zoos_as_two_groups(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    torchreid, fastreid = out.split("\nfast-reid\n")
    assert torchreid.startswith("torchreid\n") and "bot_r50" not in torchreid
    assert "osnet_x1_0" not in fastreid
    assert "94.4 / 86.1 / 59.4" in fastreid and "85.1 / 65.4 / 18.4‡" in fastreid  # MGN on MSMT17: no file
    assert "bot_r50_ibn.vehicleid  vehicleid (large)" in fastreid and "sbs_r50_ibn.veri" in fastreid
    assert main(["list", "sbs*"]) == 0
    assert capsys.readouterr().out.startswith("fast-reid\n")  # only the groups that match


def test_info_shows_the_layout_era_builder_arguments_and_every_metric(capsys):
    assert main(["info", "bagtricks_R50-ibn"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bot_r50_ibn (aliases: bagtricks_r50-ibn, bot_r50-ibn)\n  zoo         fastreid")
    assert "market1501: R1 94.9 mAP 87.6 mINP 64.1" in out
    assert "vehicleid (small): R1 86.6 R5 97.9" in out and "256x256, bicubic resize" in out
    assert "vehicleid_bot_R50-ibn.pth (checkpoint, fastreid layout, era 0.1.1)" in out
    assert "builder    era=1.0, pool=gem_fixed" in out
    assert main(["info", "mgn_r50_ibn"]) == 0
    assert "unreleased  msmt17: R1 85.1 mAP 65.4 mINP 18.4" in capsys.readouterr().out


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
