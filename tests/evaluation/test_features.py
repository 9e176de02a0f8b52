"""extract_features: rows in path order, equal to a plain per-image loop, whatever the settings."""

from __future__ import annotations


import pytest
import torch
from torch import nn

import modelzoo
from modelzoo.errors import PrecisionError
from modelzoo.inference import features, precision
from modelzoo.inference.features import default_num_workers, extract_features, fold_batchnorm
from modelzoo.models import attach_info
from tests.evaluation import imagefiles
from tests.evaluation.imagefiles import features_one_by_one, small_network, small_transform, write_images

COUNT = 13  # not a multiple of the batch sizes used, so a short last batch is exercised


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> list[str]:
    return write_images(tmp_path_factory.mktemp("images"), COUNT)


def extract(model, paths, **settings) -> torch.Tensor:
    settings.setdefault("num_workers", 0)
    settings.setdefault("batch_size", 4)
    return extract_features(model, paths, small_transform(), device="cpu", progress=False, **settings)


def assert_same_features(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float rounding (BatchNorm folding and memory formats reorder the arithmetic)."""
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_features_equal_a_plain_loop_over_the_images(paths):
    model = small_network()
    expected = features_one_by_one(small_network(), paths, small_transform())
    actual = extract(model, paths)
    assert actual.dtype == torch.float32 and actual.device.type == "cpu"
    assert_same_features(actual, expected)


def test_rows_follow_the_order_of_the_paths(paths):
    model = small_network()
    forward = extract(model, paths)
    backward = extract(model, paths[::-1])
    assert not torch.allclose(forward[0], forward[1])  # the images differ, so the order is visible
    assert_same_features(backward, forward.flip(0))


@pytest.mark.parametrize("batch_size", [1, 7])
def test_batch_size_does_not_change_the_features(paths, batch_size):
    model = small_network()
    assert_same_features(extract(model, paths, batch_size=batch_size), extract(model, paths, batch_size=COUNT))


def test_decoding_workers_do_not_change_the_features(paths):
    model = small_network()
    assert_same_features(extract(model, paths, num_workers=2), extract(model, paths, num_workers=0))


@pytest.mark.parametrize("settings", [{"fold_bn": False}, {"channels_last": False}, {"channels_last": True}])
def test_each_optimisation_keeps_the_features(paths, settings):
    model = small_network()
    assert_same_features(extract(model, paths, **settings), extract(model, paths))


def test_a_real_architecture_matches_the_plain_loop(paths):
    torch.manual_seed(0)
    model = modelzoo.build("osnet_x0_25", num_classes=10).eval()
    transform = small_transform((64, 32))  # OSNet pools globally, so a small input keeps the test fast
    expected = features_one_by_one(model, paths[:3], transform)
    actual = extract_features(model, paths[:3], transform, device="cpu", num_workers=0, progress=False)
    assert_same_features(actual, expected)


def test_folding_leaves_the_callers_model_untouched(paths):
    model = small_network()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    extract(model, paths[:2])
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def test_flip_averages_the_features_of_each_image_and_its_mirror_image(tmp_path):
    from PIL import Image, ImageOps

    rng = torch.Generator().manual_seed(4)
    originals, mirrors = [], []
    for index in range(6):  # already at the input size, so resizing cannot make a mirror differ
        pixels = torch.randint(0, 256, (*imagefiles.SMALL_INPUT, 3), generator=rng, dtype=torch.uint8).numpy()
        image = Image.fromarray(pixels)
        originals.append(str(tmp_path / f"{index}.png"))
        mirrors.append(str(tmp_path / f"{index}-mirror.png"))
        image.save(originals[-1])
        ImageOps.mirror(image).save(mirrors[-1])
    model = small_network()
    plain, mirrored = extract(model, originals), extract(model, mirrors)
    assert not torch.allclose(plain, mirrored, atol=1e-3)  # the network sees the difference
    for settings in ({}, {"channels_last": False}):
        assert_same_features(extract(model, originals, flip=True, **settings), (plain + mirrored) / 2)


def test_fold_batchnorm_removes_batchnorm_and_keeps_outputs():
    model = small_network()
    folded = fold_batchnorm(model)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
    images = torch.randn(3, 3, *small_transform().transforms[1].size)
    with torch.no_grad():
        assert_same_features(folded(images), model(images))


def test_fold_batchnorm_returns_an_untraceable_model_as_is():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # control flow on values: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return self.conv(x)

    model = DataDependent().eval()
    assert fold_batchnorm(model) is model


def test_bf16_features_are_close_to_fp32(paths, monkeypatch):
    # autocast's bf16 path, on any CPU: where bf16 is only emulated it is slow, not wrong
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    model = small_network()
    fp32 = extract(model, paths[:4])
    bf16 = extract(model, paths[:4], precision="bf16")
    assert bf16.dtype == torch.float32
    assert not torch.equal(bf16, fp32)  # autocast really ran in bf16
    assert torch.nn.functional.cosine_similarity(bf16, fp32, dim=1).min().item() >= 0.99


def test_bf16_is_refused_on_a_cpu_without_native_bf16(paths, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(PrecisionError, match="no native bf16.*precision='fp32'"):
        extract(small_network(), paths[:2], precision="bf16")


def test_fp16_on_the_cpu_is_refused_with_advice(paths):
    with pytest.raises(ValueError, match="CUDA.*bf16"):
        extract(small_network(), paths[:2], precision="fp16")


def test_unknown_precision_is_refused(paths):
    with pytest.raises(ValueError, match="fp32"):
        extract(small_network(), paths[:2], precision="int8")


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "64"])
def test_bad_batch_size_is_refused(paths, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        extract(small_network(), paths[:2], batch_size=batch_size)


@pytest.mark.parametrize("num_workers", [-1, 1.5])
def test_bad_worker_count_is_refused(paths, num_workers):
    with pytest.raises(ValueError, match="num_workers"):
        extract(small_network(), paths[:2], num_workers=num_workers)


def test_missing_transform_is_refused(paths):
    with pytest.raises(ValueError, match="modelzoo.transforms"):
        extract_features(small_network(), paths[:2], device="cpu", progress=False)


def test_the_attached_transform_is_used_by_default(paths):
    model = attach_info(small_network(), "osnet_x0_25", transform=small_transform())
    attached = extract_features(model, paths[:3], device="cpu", num_workers=0, progress=False)
    assert_same_features(attached, extract(model, paths[:3]))


def test_no_paths_give_an_empty_result():
    assert extract(small_network(), []).shape == (0, 0)


def test_default_workers_leave_the_cpu_to_the_network_when_it_runs_there(monkeypatch):
    monkeypatch.setattr(features, "available_cpus", lambda: 16)
    assert default_num_workers(torch.device("cpu")) == 2
    assert default_num_workers(torch.device("cuda", 0)) == 8
    monkeypatch.setattr(features, "available_cpus", lambda: 2)
    assert default_num_workers(torch.device("cpu")) == 0  # a decoder process would take a core from the network
    assert default_num_workers(torch.device("cuda", 0)) == 2


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_features_match_the_cpu(paths, precision):
    model = small_network()
    on_cpu = extract(model, paths)
    on_cuda = extract_features(
        model, paths, small_transform(), device="cuda", precision=precision, num_workers=0, progress=False
    )
    assert on_cuda.dtype == torch.float32 and on_cuda.device.type == "cpu"
    if precision == "fp32":  # TF32 may be on for convolutions: a looser tolerance than on the CPU
        torch.testing.assert_close(on_cuda, on_cpu, rtol=1e-3, atol=1e-3 * on_cpu.abs().max().item())
    else:
        assert torch.nn.functional.cosine_similarity(on_cuda, on_cpu, dim=1).min().item() >= 0.99


def test_fold_batchnorm_leaves_a_model_that_reuses_a_layer_as_is():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return self.conv(self.bn(self.conv(x)))  # folding bn into conv would change the outer call too

    model = Shared().eval()
    assert fold_batchnorm(model) is model


def test_fold_batchnorm_folds_a_model_that_reuses_its_relu():
    class SharedRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
            self.conv2, self.bn2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    folded = fold_batchnorm(SharedRelu().eval())
    assert not any(isinstance(module, nn.BatchNorm2d) for module in folded.modules())
