"""Device selection, and the CUDA path where a GPU exists."""

from __future__ import annotations

import pytest
import torch

import modelzoo
from modelzoo.devices import resolve_device
from modelzoo.errors import DeviceError

def test_none_means_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected


@pytest.mark.parametrize("spec", ["cpu", torch.device("cpu")])
def test_cpu_in_every_spelling(spec):
    assert resolve_device(spec) == torch.device("cpu")


def test_not_a_device_is_a_clear_error():
    with pytest.raises(DeviceError, match="'cpu', 'cuda', 'cuda:N'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda:0")


@pytest.mark.cuda
def test_bare_cuda_gets_an_index():
    assert resolve_device("cuda").index == torch.cuda.current_device()


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["osnet_x0_25", "hacnn"])
def test_models_run_on_cuda_like_on_cpu(name):
    model = modelzoo.get(name, pretrained=False, device="cpu")
    height, width = model.modelzoo_info.record.input_size
    images = torch.randn(2, 3, height, width)
    with torch.inference_mode():
        expected = model(images)
        got = model.to("cuda")(images.to("cuda")).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
