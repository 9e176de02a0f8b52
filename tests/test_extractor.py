"""modelzoo.FeatureExtractor: in-memory crops (OpenCV BGR arrays, PIL, paths) to features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import modelzoo
from modelzoo.inference.features import extract_features
from tests.published import published

NAME, DATASET = "osnet_x0_25", "market1501"
DIM = modelzoo.info(NAME).feature_dim  # 512


def crops(count: int = 5, seed: int = 0) -> list[np.ndarray]:
    """RGB uint8 crops of person-like sizes, each with its own content."""
    rng = np.random.default_rng(seed)
    sizes = ((128, 64), (96, 40), (256, 128), (70, 30))
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(count)]


@pytest.fixture
def model(mirror):
    published(NAME, DATASET, mirror)
    return modelzoo.get(NAME, DATASET, device="cpu", progress=False)


def test_bgr_arrays_rgb_arrays_pil_images_and_files_give_the_same_features(model, tmp_path):
    extractor = modelzoo.FeatureExtractor(model, device="cpu", batch_size=2)
    rgb = crops()
    from_rgb = extractor(rgb, color="rgb")
    assert from_rgb.shape == (5, DIM) and from_rgb.dtype == torch.float32
    from_bgr = extractor([image[..., ::-1] for image in rgb], color="bgr")  # what cv2.imread gives
    torch.testing.assert_close(from_bgr, from_rgb, rtol=0, atol=0)
    torch.testing.assert_close(extractor([Image.fromarray(image) for image in rgb]), from_rgb, rtol=0, atol=0)
    paths = []
    for index, image in enumerate(rgb):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    torch.testing.assert_close(extractor(paths), from_rgb, rtol=0, atol=0)
    # the channel order matters: treating BGR as RGB changes the features (user-pain row 14)
    assert not torch.allclose(extractor(rgb, color="bgr"), from_rgb)


def test_equals_the_evaluation_pipeline_on_the_same_files(model, tmp_path):
    paths = []
    for index, image in enumerate(crops(7, seed=3)):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    expected = extract_features(model, paths, device="cpu", num_workers=0, progress=False)
    got = modelzoo.FeatureExtractor(model, device="cpu", batch_size=3)(paths)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_one_image_a_stack_and_no_image(model):
    extractor = modelzoo.FeatureExtractor(model, device="cpu")
    image = crops(1)[0]
    one = extractor(image, color="rgb")
    assert one.shape == (1, DIM)
    stack = np.stack([image, image[::-1]])  # (N, H, W, 3), e.g. crops resized by the tracker
    assert extractor(stack, color="rgb").shape == (2, DIM)
    torch.testing.assert_close(extractor(stack, color="rgb")[:1], one, rtol=1e-5, atol=1e-6)  # batch of 2 vs 1
    assert extractor([]).shape == (0, DIM)  # a frame without detections


def test_normalize_gives_unit_features(model):
    features = modelzoo.FeatureExtractor(model, device="cpu", normalize=True)(crops(), color="rgb")
    torch.testing.assert_close(features.norm(dim=1), torch.ones(5))


def test_flip_averages_each_crop_with_its_mirror_image_before_normalising(model):
    rng = np.random.default_rng(6)
    rgb = [rng.integers(0, 256, (256, 128, 3), dtype=np.uint8) for _ in range(3)]  # the input size: no resizing
    mirrors = [image[:, ::-1] for image in rgb]
    extractor = modelzoo.FeatureExtractor(model, device="cpu")
    plain, mirrored = extractor(rgb, color="rgb"), extractor(mirrors, color="rgb")
    assert not torch.allclose(plain, mirrored, atol=1e-3)
    flipped = modelzoo.FeatureExtractor(model, device="cpu", flip=True)(rgb, color="rgb")
    torch.testing.assert_close(flipped, (plain + mirrored) / 2, rtol=1e-5, atol=1e-5)
    normalised = modelzoo.FeatureExtractor(model, device="cpu", flip=True, normalize=True)(rgb, color="rgb")
    torch.testing.assert_close(normalised, torch.nn.functional.normalize(flipped, dim=1), rtol=1e-5, atol=1e-6)


def test_by_name_loads_the_trained_checkpoint_strictly(mirror):
    reference, _ = published(NAME, DATASET, mirror)
    extractor = modelzoo.FeatureExtractor(f"{NAME}.{DATASET}", device="cpu", fold_bn=False)
    image = crops(1)[0]
    pixels = modelzoo.transforms(NAME, DATASET)(Image.fromarray(image)).unsqueeze(0)
    with torch.no_grad():
        expected = reference(pixels)
    torch.testing.assert_close(extractor(image, color="rgb"), expected, rtol=1e-5, atol=1e-6)


def test_missing_weights_are_an_error_not_random_features(mirror):
    with pytest.raises((modelzoo.errors.DownloadError, modelzoo.errors.NotCachedError), match="modelzoo import"):
        modelzoo.FeatureExtractor(NAME, DATASET, device="cpu")


@pytest.mark.parametrize("images, color, message", [
    (crops(1), None, "color='bgr'"),
    ([crops(1)[0].astype(np.float32)], "rgb", "uint8"),
    ([np.zeros((10, 10, 4), np.uint8)], "rgb", "HxWx3"),
    ([torch.zeros(3, 10, 10)], "rgb", "cannot read"),
    (torch.zeros(1, 3, 10, 10), "rgb", "tensors are not taken"),
    (crops(1), "hsv", "color must be"),
    (42, "rgb", "expected an image"),
])
def test_bad_input_says_what_to_do(model, images, color, message):
    extractor = modelzoo.FeatureExtractor(model, device="cpu")
    with pytest.raises(ValueError, match=message):
        extractor(images, color=color)


def test_bad_settings_are_refused_before_loading(model):
    with pytest.raises(ValueError, match="fp16"):
        modelzoo.FeatureExtractor(model, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        modelzoo.FeatureExtractor(model, device="cpu", batch_size=0)
    with pytest.raises(ValueError, match="transform"):
        modelzoo.FeatureExtractor(torch.nn.Linear(2, 2), device="cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_runs_on_cuda_and_returns_cpu_float32(model, precision):
    on_cpu = modelzoo.FeatureExtractor(model, device="cpu")(crops(), color="rgb")
    on_gpu = modelzoo.FeatureExtractor(model, device="cuda", precision=precision)(crops(), color="rgb")
    assert on_gpu.device.type == "cpu" and on_gpu.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(on_gpu, on_cpu).min() >= 0.999


@pytest.mark.parametrize("name", modelzoo.list_models())
def test_every_built_architecture_gives_features_of_its_published_width(name):
    model = modelzoo.build(name, num_classes=10)  # build() attaches its checkpoint's eval transform
    assert repr(model.modelzoo_info.transform) == repr(modelzoo.transforms(name))
    features = modelzoo.FeatureExtractor(model, device="cpu")(crops(2), color="bgr")
    assert features.shape == (2, modelzoo.info(name).feature_dim)
    assert torch.isfinite(features).all()


def frame_and_boxes() -> tuple[np.ndarray, np.ndarray]:
    """A BGR video frame and xyxy boxes: fractional edges, one reaching past the frame."""
    frame = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10.2, 20.7, 60.0, 150.0], [200, 30, 290, 230], [280.5, 100, 400, 300]])
    return frame, boxes


def test_a_frame_and_its_boxes_give_the_features_of_the_crops(model):
    extractor = modelzoo.FeatureExtractor(model, device="cpu", batch_size=2)
    frame, boxes = frame_and_boxes()
    got = extractor(frame, boxes, color="bgr")
    # edges rounded outwards, and the last box clamped to the 320x240 frame
    cut = [frame[20:150, 10:60], frame[30:230, 200:290], frame[100:240, 280:320]]
    torch.testing.assert_close(got, extractor(cut, color="bgr"), rtol=0, atol=0)
    torch.testing.assert_close(extractor(frame, torch.tensor(boxes), color="bgr"), got, rtol=0, atol=0)
    torch.testing.assert_close(extractor(frame, boxes.tolist(), color="bgr"), got, rtol=0, atol=0)
    pil_frame = Image.fromarray(np.ascontiguousarray(frame[..., ::-1]))
    torch.testing.assert_close(extractor(pil_frame, boxes), got, rtol=0, atol=0)
    assert extractor(frame, np.zeros((0, 4)), color="bgr").shape == (0, DIM)


@pytest.mark.parametrize("boxes, match", [
    ([[0, 0, 10, 10], [50, 50, 40, 60], [400, 10, 500, 90]], r"boxes 1, 2 are empty inside the 320x240 frame"),
    ([[0, 0, 10]], r"\(N, 4\) rows of x1, y1, x2, y2; got shape \(1, 3\)"),
    ([[0, 0, float("nan"), 10]], "finite numbers; rows 0"),
])
def test_boxes_that_cannot_be_cut_are_named(model, boxes, match):
    frame, _ = frame_and_boxes()
    with pytest.raises(ValueError, match=match):
        modelzoo.FeatureExtractor(model, device="cpu")(frame, boxes, color="bgr")


def test_a_frame_array_still_needs_its_channel_order(model):
    frame, boxes = frame_and_boxes()
    with pytest.raises(ValueError, match="color='bgr'"):
        modelzoo.FeatureExtractor(model, device="cpu")(frame, boxes)
