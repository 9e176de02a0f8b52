"""modelzoo.safetensors_reader: same tensors as the safetensors library, checked headers."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from modelzoo.errors import SafetensorsFormatError
from modelzoo.formats.safetensors_file import read_safetensors


def every_dtype() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 5, generator=generator),
        "f64": torch.randn(4, generator=generator, dtype=torch.float64),
        "f16": torch.randn(2, 3, generator=generator).half(),
        "bf16": torch.randn(7, generator=generator).bfloat16(),
        "i64": torch.arange(-5, 6),
        "i32": torch.arange(9, dtype=torch.int32).reshape(3, 3),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 4),
        "conv": torch.randn(8, 3, 7, 7, generator=generator),
    }


def write(tmp_path, tensors, metadata=None):
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def test_reads_the_same_tensors_and_metadata_as_the_library(tmp_path):
    tensors = every_dtype()
    path = write(tmp_path, tensors, {"order": json.dumps(list(tensors)), "format": "pt"})
    ours, metadata = read_safetensors(path)
    theirs = load_file(str(path))
    assert set(ours) == set(theirs) == set(tensors)
    for name, tensor in tensors.items():
        assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
        assert torch.equal(ours[name], theirs[name]) and torch.equal(ours[name], tensor), name
    assert metadata == {"order": json.dumps(list(tensors)), "format": "pt"}


def test_tensors_are_independent_writable_and_can_be_saved_again(tmp_path):
    path = write(tmp_path, {"a": torch.ones(100), "b": torch.zeros(100)})
    tensors, metadata = read_safetensors(path)
    assert metadata == {}
    pointers = {t.untyped_storage().data_ptr() for t in tensors.values()}
    assert len(pointers) == 2  # no shared storage: safetensors' save_file would refuse it
    tensors["a"].add_(1)
    assert torch.equal(read_safetensors(path)[0]["a"], torch.ones(100))  # the file is untouched
    save_file(tensors, str(tmp_path / "again.safetensors"))


def raw_file(tmp_path, header: dict, data: bytes, length: int | None = None):
    encoded = json.dumps(header).encode()
    path = tmp_path / "raw.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded) if length is None else length) + encoded + data)
    return path


@pytest.mark.parametrize("header, data, length, message", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None, "do not hold"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "do not hold"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, b"\0" * 8, None, "do not hold"),
    ({"a": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "dtype"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, b"\0" * 8, None, "data_offsets"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, 1 << 40, "header length"),
    ({"__metadata__": {"k": 1}}, b"", None, "__metadata__"),
    ([1, 2], b"", None, "JSON object"),
])
def test_malformed_headers_are_refused_before_reading(tmp_path, header, data, length, message):
    with pytest.raises(SafetensorsFormatError, match=message):
        read_safetensors(raw_file(tmp_path, header, data, length))


def test_garbage_and_truncated_files_are_refused(tmp_path):
    path = tmp_path / "g.safetensors"
    path.write_bytes(b"abc")
    with pytest.raises(SafetensorsFormatError, match="shorter"):
        read_safetensors(path)
    path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{]")
    with pytest.raises(SafetensorsFormatError, match="not JSON"):
        read_safetensors(path)
