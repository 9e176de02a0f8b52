"""Careless input: every value that cannot work is refused before any work, in one line that says what to do."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import modelzoo
from modelzoo import fetch
from modelzoo.cli import main
from modelzoo.errors import (
    CheckpointFormatError,
    CheckpointMismatchError,
    ConfigError,
    DeviceError,
    UnknownModelError,
)
from modelzoo.models import import_file
from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.weights import deterministic_state_dict
from tests.published import published

NAME = "osnet_x0_25"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --------------------------------------------------------------------------- import trusts nothing


def test_another_models_weights_are_refused_on_import_and_the_genuine_file_still_imports(tmp_path, capsys):
    checkpoint = modelzoo.checkpoint_info(f"{NAME}.market1501")
    wrong = ckptgen.write_checkpoint(tmp_path / "wrong.pth", deterministic_state_dict(modelzoo.build("osnet_x0_5")),
                                     "bare")
    no_model = ckptgen.write_checkpoint(tmp_path / "toy.pth", ckptgen.toy_state_dict(), "bare")
    for path in (wrong, no_model):
        assert main(["import", NAME, "market1501", str(path)]) == 1
        assert "does not fit osnet_x0_25" in one_line(capsys.readouterr().err)
        assert fetch.cached_path(checkpoint) is None
    genuine = ckptgen.write_for_checkpoint(checkpoint, tmp_path, deterministic_state_dict(modelzoo.build(NAME)))
    assert main(["import", NAME, "market1501", str(genuine)]) == 0  # no hash of a refused file was trusted


def test_a_download_of_another_models_weights_is_refused_by_modelzoo_download(tmp_path):
    checkpoint = modelzoo.checkpoint_info(f"{NAME}.market1501")
    ckptgen.write_for_checkpoint(checkpoint, tmp_path, deterministic_state_dict(modelzoo.build("osnet_x0_5")))
    with pytest.raises(Exception) as caught:
        modelzoo.download(checkpoint, progress=False, mirrors=[str(tmp_path)])
    assert "does not fit" in str(caught.value)
    assert fetch.cached_path(checkpoint) is None


def test_import_messages_name_the_users_file(tmp_path):
    page = tmp_path / "my-download.pth"
    page.write_text("\n\n   <!DOCTYPE html><html><title>Quota exceeded</title></html>")  # whitespace first
    with pytest.raises(CheckpointFormatError, match=r"^my-download\.pth is an HTML page \('Quota exceeded'\)"):
        import_file(f"{NAME}.market1501", page)


def test_a_damaged_zip_says_what_is_damaged(tmp_path):
    archive = tmp_path / "shufflenet_market_softmax.zip"
    ckptgen.write_qmul_zip(archive, deterministic_state_dict(modelzoo.build("shufflenet")))
    raw = bytearray(archive.read_bytes())
    raw[200:210] = b"\0" * 10  # inside the compressed weights
    archive.write_bytes(bytes(raw))
    with pytest.raises(Exception, match=r"damaged zip archive \(\S"):
        import_file("shufflenet.market1501", archive)


def test_a_key_error_message_is_capped(tmp_path):
    from modelzoo.formats import read_state_dict
    from modelzoo.loading import load_strict

    huge_key = "k" * 2_000_000
    path = tmp_path / "w.pth"
    torch.save({huge_key: "not a tensor", "w": torch.zeros(1)}, path)
    with pytest.raises(CheckpointFormatError) as caught:
        read_state_dict(path)
    assert len(str(caught.value)) < 1000
    with pytest.raises(CheckpointMismatchError) as mismatch:
        load_strict(torch.nn.Linear(1, 1), {huge_key: torch.zeros(1), "weight": torch.zeros(1, 1)})
    assert len(str(mismatch.value)) < 2000


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def data_root(tmp_path):
    from modelzoo.testing import synthetic

    return synthetic.write_dataset("market1501", tmp_path / "data", num_train_ids=2, num_test_ids=3)


@pytest.mark.parametrize(("argv", "env", "says"), [
    (["eval", NAME, "market", "--batch-size", "0"], {}, "--batch-size"),
    (["eval", NAME, "market", "--workers", "-1"], {}, "--workers"),
    (["eval", NAME, "market", "--precision", "fp16", "--device", "cpu"], {}, "fp16 needs a CUDA device"),
    (["eval", NAME, "market", "--backend", "tensorrt", "--device", "cpu"], {}, "runs on cuda"),
    (["eval", NAME, "market", "--backend", "onnxruntime", "--precision", "bf16", "--device", "cpu"], {},
     "float32 only"),
    (["verify", NAME, "--precision", "bf16"], {}, "unrecognized arguments: --precision"),
    (["eval", NAME, "market"], {"WORLD_SIZE": "abc"}, "WORLD_SIZE"),
    (["eval", NAME, "market"], {"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5 does not fit"),
    (["verify", NAME, "--report-dir", "FILE"], {}, "is a file, not a folder"),
    (["verify", NAME, "--tolerance", "nan"], {}, "--tolerance"),
    (["verify", NAME, "--tolerance", "-1"], {}, "--tolerance"),
    (["export", NAME, "-o", "MISSING/x.onnx"], {}, "does not exist"),
    (["export", NAME, "-o", "DIR"], {}, "is a folder"),
    (["demo", "--workdir", "FILE"], {}, "is a file, not a folder"),
    (["download", NAME], {"MODELZOO_OFFLINE": "maybe"}, "MODELZOO_OFFLINE"),
])
def test_a_value_that_cannot_work_is_refused_first_with_exit_2(argv, env, says, data_root, tmp_path, monkeypatch,
                                                                 capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    places = {"FILE": str(a_file), "DIR": str(tmp_path), "MISSING/x.onnx": str(tmp_path / "missing" / "x.onnx")}
    argv = [places.get(arg, arg) for arg in argv]
    if argv[0] in ("eval", "verify"):
        argv += ["--data-root", str(data_root)]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert says in one_line(capsys.readouterr().err)
    for name in env:
        monkeypatch.delenv(name)
    assert fetch.list_cached() == []  # refused before any download


def test_an_unreadable_image_is_named_with_the_doctor_command(data_root, mirror, capsys):
    published(NAME, "market1501", mirror)
    query = next((data_root / "market1501" / "Market-1501-v15.09.15" / "query").glob("*.jpg"))
    good = query.read_bytes()
    for broken in (b"", b"this is text, not a JPEG", good[: len(good) // 3]):
        query.write_bytes(broken)
        assert main(["eval", NAME, "market", "--data-root", str(data_root), "--workers", "0", "--no-progress"]) == 1
        message = one_line(capsys.readouterr().err)
        assert str(query) in message and "modelzoo doctor" in message


def test_unreadable_images_are_named_from_loader_workers_too(data_root, mirror):
    from modelzoo.errors import ImageReadError

    reference, _ = published(NAME, "market1501", mirror)
    query = next((data_root / "market1501" / "Market-1501-v15.09.15" / "query").glob("*.jpg"))
    query.write_bytes(b"")
    with pytest.raises(ImageReadError, match="modelzoo doctor") as caught:
        modelzoo.evaluate(NAME, "market", data_root, num_workers=1, progress=False)
    assert "Traceback" not in str(caught.value)


# --------------------------------------------------------------------------- the Python API


def test_a_missing_name_is_an_unknown_model():
    with pytest.raises(UnknownModelError, match="expected a model name"):
        modelzoo.get(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("device", ["mps", "meta", "xla", "gpu"])
def test_an_unsupported_device_is_refused_before_any_download(device, loopback_server, monkeypatch):
    monkeypatch.setenv("MODELZOO_MIRROR", loopback_server.url + "/")
    with pytest.raises(DeviceError, match="'cpu', 'cuda'"):
        modelzoo.get(NAME, device=device)
    assert loopback_server.log == []


def test_a_precision_that_does_not_exist_names_the_ones_that_do():
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        modelzoo.FeatureExtractor(modelzoo.build(NAME), device="cpu", precision="fp64")


@pytest.mark.parametrize("tolerance", [float("nan"), -0.5, float("inf")])
def test_verify_refuses_a_tolerance_that_is_no_number_of_points(tolerance, tmp_path):
    from modelzoo.evaluation.verify import verify

    with pytest.raises(ValueError, match="tolerance"):
        verify([NAME], data_root=tmp_path, tolerance=tolerance)


def test_an_offline_flag_that_is_neither_true_nor_false_names_the_values(monkeypatch):
    monkeypatch.setenv("MODELZOO_OFFLINE", "maybe")
    with pytest.raises(ConfigError, match="1, true, yes, on"):
        modelzoo.download(NAME, progress=False)


def test_the_cli_never_prints_a_traceback_for_a_user_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "modelzoo", "import", NAME, "market1501", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "no file at" in one_line(result.stderr)
