"""Small synthetic datasets written in the exact on-disk layouts of the real ones (people and vehicles).

Tests, demos and ``modelzoo doctor`` need data that the readers -- ours and
torchreid's -- accept unchanged, without the real (licensed, partly withdrawn)
datasets.  Each writer produces the real folder names, file-name schemes and
list files, and REAL JPEG images whose content depends on the identity:

* every identity gets its own clothing: a top colour striped with an accent
  colour at an identity-specific period, and a bottom colour;
* every camera gets its own background and brightness, every image a small
  shift and noise.

So even a colour histogram ranks images of the same person first, and a
query always has gallery images of its identity from other cameras (plus
same-camera ones that the evaluation protocol must discard).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from modelzoo.datasets._base import PathLike, absolute
from modelzoo.names import canonical_dataset
from modelzoo.datasets import vehicleid, veri, veriwild
from modelzoo.datasets.market import SPLIT_FOLDERS
from modelzoo.datasets.msmt17 import LIST_FILES, VERSIONS

DEFAULT_IMAGE_SIZE = (128, 64)  # (height, width), the usual re-ID crop
JPEG_QUALITY = 90
JUNK_PID = -1
DISTRACTOR_PID = 0

_MARKET_MAX_PID = 1501
_DUKE_MAX_PID = 7140  # largest pid in the real DukeMTMC-reID
_MSMT_DATES = ("0113", "0302", "0303")
_MSMT_TIMES = ("morning", "noon", "afternoon")
_VERI_MAX_PID = 776
_VEHICLEID_VIEWS = 2  # VehicleID has no cameras; its images are front and rear views


@dataclass(frozen=True)
class _Shot:
    """One image to write: where it goes and what it shows.

    ``appearance`` keys the clothing: equal keys, same person.
    """

    split: str
    pid: int
    camera: int  # 1-based, as in file names
    appearance: tuple[str, int]


@dataclass(frozen=True)
class _Sizes:
    """Size parameters shared by every writer (validated once)."""

    num_train_ids: int
    num_test_ids: int
    cameras: int
    cameras_per_id: int
    images_per_camera: int
    query_cameras_per_id: int


def write_market1501(
    root: PathLike,
    *,
    num_train_ids: int = 12,
    num_test_ids: int = 10,
    cameras: int = 6,
    cameras_per_id: int = 3,
    images_per_camera: int = 2,
    query_cameras_per_id: int = 2,
    num_distractors: int = 4,
    num_junk: int = 3,
    versioned: bool = True,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small Market-1501 in ``<root>/market1501/Market-1501-v15.09.15/``.

    File names follow the real scheme (``0002_c1s1_000451_03.jpg``); the
    gallery also holds junk images (``-1_c1s1_...``, dropped by readers) and
    distractors (``0000_c2s1_...``, pid 0, kept).

    Args:
        root: the data root; created if needed.
        num_train_ids: identities in ``bounding_box_train``.
        num_test_ids: identities in ``query`` and ``bounding_box_test``.
        cameras: cameras to draw from (1-6).
        cameras_per_id: cameras each identity appears in (at least 2).
        images_per_camera: images per identity and camera (train and gallery).
        query_cameras_per_id: query images per test identity, one per camera.
        num_distractors: gallery images with pid 0.
        num_junk: gallery images with pid -1.
        versioned: False writes the older layout without ``Market-1501-v15.09.15``.
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice; same seed, same bytes.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter is out of range.
        FileExistsError: the split folders exist and ``overwrite`` is False.
    """
    sizes = _validate_sizes(
        num_train_ids, num_test_ids, cameras, cameras_per_id, images_per_camera,
        query_cameras_per_id, max_cameras=6, max_ids=_MARKET_MAX_PID,
    )
    _require_non_negative(num_distractors=num_distractors, num_junk=num_junk)
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    train_pids, test_pids = _disjoint_pids(rng, sizes, low=1, high=_MARKET_MAX_PID)
    shots = _plan_identities(rng, sizes, train_pids, test_pids)
    shots += _plan_gallery_extras(rng, sizes.cameras, DISTRACTOR_PID, num_distractors, "distractor")
    shots += _plan_gallery_extras(rng, sizes.cameras, JUNK_PID, num_junk, "junk")
    base = absolute(root)
    data_dir = base / "market1501"
    if versioned:
        data_dir = data_dir / "Market-1501-v15.09.15"
    _prepare_split_folders(data_dir, overwrite)
    _write_images(rng, shots, data_dir, _market_namer(rng), image_size)
    return base


def write_dukemtmcreid(
    root: PathLike,
    *,
    num_train_ids: int = 12,
    num_test_ids: int = 10,
    cameras: int = 8,
    cameras_per_id: int = 3,
    images_per_camera: int = 2,
    query_cameras_per_id: int = 2,
    num_distractor_ids: int = 2,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small DukeMTMC-reID in ``<root>/dukemtmc-reid/DukeMTMC-reID/``.

    File names follow the real scheme (``0005_c2_f0046985.jpg``).  Like the
    real gallery, it also holds identities that appear in no query.

    Args:
        root: the data root; created if needed.
        num_train_ids: identities in ``bounding_box_train``.
        num_test_ids: identities in ``query`` and ``bounding_box_test``.
        cameras: cameras to draw from (1-8).
        cameras_per_id: cameras each identity appears in (at least 2).
        images_per_camera: images per identity and camera (train and gallery).
        query_cameras_per_id: query images per test identity, one per camera.
        num_distractor_ids: gallery-only identities.
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter is out of range.
        FileExistsError: the split folders exist and ``overwrite`` is False.
    """
    _require_non_negative(num_distractor_ids=num_distractor_ids)
    sizes = _validate_sizes(
        num_train_ids, num_test_ids, cameras, cameras_per_id, images_per_camera,
        query_cameras_per_id, max_cameras=8, max_ids=_DUKE_MAX_PID - num_distractor_ids,
    )
    # Gallery-only identities are planned as test identities whose queries are dropped.
    sizes = replace(sizes, num_test_ids=num_test_ids + num_distractor_ids)
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    train_pids, test_pids = _disjoint_pids(rng, sizes, low=1, high=_DUKE_MAX_PID)
    distractor_pids = {int(pid) for pid in rng.choice(test_pids, size=num_distractor_ids, replace=False)}
    shots = [
        shot
        for shot in _plan_identities(rng, sizes, train_pids, test_pids)
        if not (shot.split == "query" and shot.pid in distractor_pids)
    ]
    data_dir = absolute(root) / "dukemtmc-reid" / "DukeMTMC-reID"
    _prepare_split_folders(data_dir, overwrite)
    _write_images(rng, shots, data_dir, _duke_namer(rng), image_size)
    return absolute(root)


def write_msmt17(
    root: PathLike,
    *,
    version: str = "V1",
    num_train_ids: int = 12,
    num_test_ids: int = 10,
    cameras: int = 15,
    cameras_per_id: int = 3,
    images_per_camera: int = 2,
    query_cameras_per_id: int = 2,
    val_images_per_id: int = 1,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small MSMT17 in ``<root>/msmt17/MSMT17_V1/`` (or ``MSMT17_V2``).

    Images sit in one folder per identity (``0000/0000_000_01_0303morning_0015_0.jpg``)
    under ``train``/``test`` (V1) or ``mask_train_v2``/``mask_test_v2`` (V2),
    listed with their pids in ``list_train.txt``, ``list_val.txt``,
    ``list_query.txt`` and ``list_gallery.txt``.  Train and test pids both
    start at 0, as in the real dataset (they are different people).

    Args:
        root: the data root; created if needed.
        version: ``"V1"`` or ``"V2"`` (``"MSMT17_V2"`` also accepted).
        num_train_ids: identities in the training folder.
        num_test_ids: identities in the test folder.
        cameras: cameras to draw from (1-15).
        cameras_per_id: cameras each identity appears in (at least 2).
        images_per_camera: images per identity and camera (train and gallery).
        query_cameras_per_id: query images per test identity, one per camera.
        val_images_per_id: training images per identity listed in
            ``list_val.txt`` instead of ``list_train.txt``.
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter or the version is out of range.
        FileExistsError: the folders exist and ``overwrite`` is False.
    """
    folder_name = _msmt_version_folder(version)
    sizes = _validate_sizes(
        num_train_ids, num_test_ids, cameras, cameras_per_id, images_per_camera,
        query_cameras_per_id, max_cameras=15, max_ids=10_000,
    )
    total_train_per_id = cameras_per_id * images_per_camera
    if not 0 <= val_images_per_id < total_train_per_id:
        raise ValueError(
            f"val_images_per_id must be in 0..{total_train_per_id - 1} (each identity "
            f"has {total_train_per_id} training images and must keep one), got {val_images_per_id}"
        )
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    shots = _plan_identities(rng, sizes, list(range(num_train_ids)), list(range(num_test_ids)))
    shots = _move_to_val(shots, val_images_per_id)
    data_dir = absolute(root) / "msmt17" / folder_name
    train_folder, test_folder = VERSIONS[folder_name]
    _prepare_msmt_folder(data_dir, (train_folder, test_folder), overwrite)
    written = _write_images(rng, shots, data_dir, _msmt_namer(rng, train_folder, test_folder), image_size)
    _write_list_files(data_dir, shots, written)
    return absolute(root)


def write_dataset(name: str, root: PathLike, **kwargs: Any) -> Path:
    """Write the synthetic version of dataset ``name`` (aliases accepted).

    Args:
        name: ``market1501``, ``dukemtmcreid``, ``msmt17``, ``veri``,
            ``vehicleid`` or ``veriwild`` (or an alias).
        root: the data root.
        **kwargs: passed to that dataset's writer (:func:`write_market1501`, ...).

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.
    """
    writers: dict[str, Callable[..., Path]] = {
        "market1501": write_market1501,
        "dukemtmcreid": write_dukemtmcreid,
        "msmt17": write_msmt17,
        "veri": write_veri,
        "vehicleid": write_vehicleid,
        "veriwild": write_veriwild,
    }
    return writers[canonical_dataset(name)](root, **kwargs)


def write_veri(
    root: PathLike,
    *,
    num_train_ids: int = 12,
    num_test_ids: int = 10,
    cameras: int = 20,
    cameras_per_id: int = 3,
    images_per_camera: int = 2,
    query_cameras_per_id: int = 2,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small VeRi-776 in ``<root>/veri/{image_train,image_query,image_test}/``.

    File names follow the real scheme (``0002_c002_00030600_0.jpg``: vehicle
    id, 3-digit camera, frame, index).

    Args:
        root: the data root; created if needed.
        num_train_ids: vehicles in ``image_train``.
        num_test_ids: vehicles in ``image_query`` and ``image_test``.
        cameras: cameras to draw from (1-20).
        cameras_per_id: cameras each vehicle appears in (at least 2).
        images_per_camera: images per vehicle and camera (train and gallery).
        query_cameras_per_id: query images per test vehicle, one per camera.
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter is out of range.
        FileExistsError: the split folders exist and ``overwrite`` is False.
    """
    sizes = _validate_sizes(
        num_train_ids, num_test_ids, cameras, cameras_per_id, images_per_camera,
        query_cameras_per_id, max_cameras=20, max_ids=_VERI_MAX_PID,
    )
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    train_pids, test_pids = _disjoint_pids(rng, sizes, low=1, high=_VERI_MAX_PID)
    shots = _plan_identities(rng, sizes, train_pids, test_pids)
    data_dir = absolute(root) / "veri"
    _prepare_split_folders(data_dir, overwrite, veri.SPLIT_FOLDERS)
    _write_images(rng, shots, data_dir, _veri_namer(rng), image_size)
    return absolute(root)


def write_vehicleid(
    root: PathLike,
    *,
    num_train_ids: int = 6,
    test_ids: tuple[int, int, int] = (4, 6, 8),
    images_per_id: int = 3,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small VehicleID in ``<root>/vehicleid/{image,train_test_split}/``.

    Images are ``image/<7-digit image id>.jpg``; ``train_list.txt`` and the
    three test lists hold ``<image id> <vehicle id>`` lines.  The small test
    set's vehicles are the first of the medium set's, which are the first of
    the large set's.

    Args:
        root: the data root; created if needed.
        num_train_ids: vehicles in ``train_list.txt``.
        test_ids: vehicles of the small, medium and large test sets (increasing).
        images_per_id: images per vehicle (at least 2: one gallery image, queries).
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter is out of range.
        FileExistsError: the folders exist and ``overwrite`` is False.
    """
    _validate_test_ids(test_ids)
    if images_per_id < 2 or num_train_ids < 0:
        raise ValueError(f"need images_per_id >= 2 and num_train_ids >= 0, got {images_per_id} and {num_train_ids}")
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    pids = sorted(int(pid) for pid in rng.choice(np.arange(1, 100_000), size=num_train_ids + test_ids[2],
                                                 replace=False))
    train_pids, test_pids = pids[:num_train_ids], pids[num_train_ids:]
    shots = [_Shot(split, pid, int(rng.integers(1, _VEHICLEID_VIEWS + 1)), (split, pid))
             for split, group in (("train", train_pids), ("test", test_pids)) for pid in group
             for _ in range(images_per_id)]
    data_dir = absolute(root) / vehicleid.LAYOUT.dataset_dir
    _prepare_list_dataset(data_dir, vehicleid.IMAGE_FOLDER, vehicleid.LIST_FOLDER, overwrite)
    written = _write_images(rng, shots, data_dir, _vehicleid_namer(), image_size)
    lines = [f"{Path(relative).stem} {shot.pid}\n" for shot, relative in zip(shots, written)]
    lists = {"train": [line for shot, line in zip(shots, lines) if shot.split == "train"]}
    for size, count in zip(vehicleid.TEST_LISTS, test_ids):
        ids = set(test_pids[:count])
        lists[size] = [line for shot, line in zip(shots, lines) if shot.split == "test" and shot.pid in ids]
    for split, file_name in vehicleid.LIST_FILES.items():
        (data_dir / vehicleid.LIST_FOLDER / file_name).write_text("".join(lists[split]), encoding="utf-8")
    return absolute(root)


def write_veriwild(
    root: PathLike,
    *,
    num_train_ids: int = 6,
    test_ids: tuple[int, int, int] = (3, 5, 8),
    cameras: int = 12,
    cameras_per_id: int = 2,
    images_per_camera: int = 2,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a small VERI-Wild in ``<root>/VERI-Wild/{images,train_test_split}/``.

    Images are ``images/<5-digit vehicle id>/<6-digit image id>.jpg``; the
    list files hold ``<vehicle id>/<image id>`` lines and ``vehicle_info.txt``
    a header, then ``<vehicle id>/<image id>;<camera>;<time>;<model>;<type>;<colour>``.
    Each test vehicle has one query image (in ``test_<n>_query.txt``); its
    other images are the gallery (``test_<n>.txt``), some from the query's
    camera (which the protocol drops).  The small test set's vehicles are the
    first of the medium set's, which are the first of the large set's.

    Args:
        root: the data root; created if needed.
        num_train_ids: vehicles in ``train_list.txt``.
        test_ids: vehicles of the small, medium and large test sets (increasing).
        cameras: cameras to draw from.
        cameras_per_id: cameras each vehicle appears in (at least 2).
        images_per_camera: gallery (and train) images per vehicle and camera.
        image_size: ``(height, width)`` of every image.
        seed: seed of every random choice.
        overwrite: replace an existing synthetic dataset at the same place.

    Returns:
        ``root`` as an absolute path: pass it as ``data_root``.

    Raises:
        ValueError: a size parameter is out of range.
        FileExistsError: the folders exist and ``overwrite`` is False.
    """
    _validate_test_ids(test_ids)
    sizes = _validate_sizes(num_train_ids, test_ids[2], cameras, cameras_per_id, images_per_camera, 1,
                            max_cameras=999, max_ids=99_999)
    _validate_image_size(image_size)
    rng = np.random.default_rng(seed)
    train_pids, test_pids = _disjoint_pids(rng, sizes, low=1, high=99_999)
    shots = _plan_identities(rng, sizes, train_pids, test_pids)
    data_dir = absolute(root) / veriwild.LAYOUT.dataset_dir
    _prepare_list_dataset(data_dir, veriwild.IMAGE_FOLDER, veriwild.LIST_FOLDER, overwrite)
    written = _write_images(rng, shots, data_dir, _veriwild_namer(), image_size)
    names = [relative.split("/", 1)[1].removesuffix(".jpg") for relative in written]
    lists: dict[str, list[str]] = {"train": [f"{name}\n" for shot, name in zip(shots, names) if shot.split == "train"]}
    for size, count in zip(veriwild.TEST_SIZES, test_ids):
        ids = set(test_pids[:count])
        for part in ("query", "gallery"):
            lists[f"{size} {part}"] = [f"{name}\n" for shot, name in zip(shots, names)
                                       if shot.split == part and shot.pid in ids]
    folder = data_dir / veriwild.LIST_FOLDER
    for split, file_name in veriwild.LIST_FILES.items():
        (folder / file_name).write_text("".join(lists[split]), encoding="utf-8")
    info = [f"{name};{shot.camera:03d};2018-03-11 11:30:59;model {shot.pid % 7};sedan;white\n"
            for shot, name in zip(shots, names)]
    (folder / veriwild.CAMERA_FILE).write_text("id/image;camera;time;model;type;color\n" + "".join(info),
                                              encoding="utf-8")
    return absolute(root)


# --------------------------------------------------------------------------- planning


def _validate_sizes(
    num_train_ids: int,
    num_test_ids: int,
    cameras: int,
    cameras_per_id: int,
    images_per_camera: int,
    query_cameras_per_id: int,
    *,
    max_cameras: int,
    max_ids: int,
) -> _Sizes:
    """Check the size parameters against each other and the dataset's limits."""
    if not 1 <= cameras <= max_cameras:
        raise ValueError(f"cameras must be in 1..{max_cameras}, got {cameras}")
    if not 2 <= cameras_per_id <= cameras:
        raise ValueError(
            f"cameras_per_id must be in 2..cameras ({cameras}), got {cameras_per_id}: a query "
            f"needs gallery images of its identity from another camera"
        )
    if not 1 <= query_cameras_per_id <= cameras_per_id:
        raise ValueError(
            f"query_cameras_per_id must be in 1..cameras_per_id ({cameras_per_id}), "
            f"got {query_cameras_per_id}"
        )
    if images_per_camera < 1:
        raise ValueError(f"images_per_camera must be at least 1, got {images_per_camera}")
    if num_train_ids < 0 or num_test_ids < 1:
        raise ValueError(
            f"need num_train_ids >= 0 and num_test_ids >= 1, got {num_train_ids} and {num_test_ids}"
        )
    if num_train_ids + num_test_ids > max_ids:
        raise ValueError(f"at most {max_ids} identities in all, got {num_train_ids + num_test_ids}")
    return _Sizes(
        num_train_ids, num_test_ids, cameras, cameras_per_id, images_per_camera, query_cameras_per_id
    )


def _validate_test_ids(test_ids: tuple[int, int, int]) -> None:
    """The vehicles of the small, medium and large test sets: three increasing counts."""
    if len(test_ids) != 3 or not 1 <= test_ids[0] <= test_ids[1] <= test_ids[2]:
        raise ValueError(f"test_ids must be three increasing counts >= 1 (small, medium, large), got {test_ids}")


def _validate_image_size(image_size: tuple[int, int]) -> None:
    height, width = image_size
    if height < 16 or width < 8:
        raise ValueError(f"image_size (height, width) must be at least (16, 8), got {image_size}")


def _require_non_negative(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _disjoint_pids(
    rng: np.random.Generator, sizes: _Sizes, *, low: int, high: int
) -> tuple[list[int], list[int]]:
    """Distinct pids in ``low..high`` for train and test, each sorted (as in the real sets)."""
    drawn = rng.choice(np.arange(low, high + 1), size=sizes.num_train_ids + sizes.num_test_ids, replace=False)
    train = sorted(int(pid) for pid in drawn[: sizes.num_train_ids])
    test = sorted(int(pid) for pid in drawn[sizes.num_train_ids :])
    return train, test


def _plan_identities(
    rng: np.random.Generator, sizes: _Sizes, train_pids: list[int], test_pids: list[int]
) -> list[_Shot]:
    """Train, query and gallery shots of every identity.

    A test identity gets one query image in each of its first
    ``query_cameras_per_id`` cameras and ``images_per_camera`` gallery images
    in every one of its cameras: each query therefore has gallery matches from
    other cameras, and same-camera ones the protocol discards.
    """
    shots: list[_Shot] = []
    for pid in train_pids:
        for camera in _cameras_of(rng, sizes):
            shots += [_Shot("train", pid, camera, ("train", pid))] * sizes.images_per_camera
    for pid in test_pids:
        cameras = _cameras_of(rng, sizes)
        query_cameras = cameras[: sizes.query_cameras_per_id]
        shots += [_Shot("query", pid, camera, ("test", pid)) for camera in query_cameras]
        for camera in cameras:
            shots += [_Shot("gallery", pid, camera, ("test", pid))] * sizes.images_per_camera
    return shots


def _cameras_of(rng: np.random.Generator, sizes: _Sizes) -> list[int]:
    chosen = rng.choice(np.arange(1, sizes.cameras + 1), size=sizes.cameras_per_id, replace=False)
    return [int(camera) for camera in chosen]


def _plan_gallery_extras(
    rng: np.random.Generator, cameras: int, pid: int, count: int, kind: str
) -> list[_Shot]:
    """Gallery-only images (distractors or junk), each with its own random look."""
    return [
        _Shot("gallery", pid, int(rng.integers(1, cameras + 1)), (kind, index))
        for index in range(count)
    ]


def _move_to_val(shots: list[_Shot], val_images_per_id: int) -> list[_Shot]:
    """Relabel the last ``val_images_per_id`` training shots of each identity as ``val``."""
    remaining = {shot.pid: val_images_per_id for shot in shots if shot.split == "train"}
    moved: list[_Shot] = []
    for shot in reversed(shots):
        if shot.split == "train" and remaining[shot.pid] > 0:
            remaining[shot.pid] -= 1
            shot = _Shot("val", shot.pid, shot.camera, shot.appearance)
        moved.append(shot)
    return moved[::-1]


# --------------------------------------------------------------------------- naming

# A namer gives a shot its path relative to the dataset folder, in the real scheme.
Namer = Callable[[_Shot], str]


def _market_namer(rng: np.random.Generator) -> Namer:
    """Paths like ``query/0002_c1s1_000451_03.jpg``; junk keeps its sign: ``-1_c1s1_...``."""
    used: set[str] = set()

    def name(shot: _Shot) -> str:
        pid_text = str(shot.pid) if shot.pid == JUNK_PID else f"{shot.pid:04d}"
        name = _unique(used, lambda: (
            f"{pid_text}_c{shot.camera}s{rng.integers(1, 7)}_"
            f"{rng.integers(1, 1_000_000):06d}_{rng.integers(1, 9):02d}.jpg"
        ))
        return f"{SPLIT_FOLDERS[shot.split]}/{name}"

    return name


def _duke_namer(rng: np.random.Generator) -> Namer:
    """Paths like ``query/0005_c2_f0046985.jpg``."""
    used: set[str] = set()

    def name(shot: _Shot) -> str:
        name = _unique(used, lambda: f"{shot.pid:04d}_c{shot.camera}_f{rng.integers(1, 10_000_000):07d}.jpg")
        return f"{SPLIT_FOLDERS[shot.split]}/{name}"

    return name


def _msmt_namer(rng: np.random.Generator, train_folder: str, test_folder: str) -> Namer:
    """Paths like ``test/0000/0000_000_01_0303morning_0015_0.jpg`` (index counts per identity)."""
    next_index: dict[tuple[str, int], int] = {}

    def name(shot: _Shot) -> str:
        folder = test_folder if shot.split in ("query", "gallery") else train_folder
        key = (folder, shot.pid)
        index = next_index.get(key, 0)
        next_index[key] = index + 1
        date = _MSMT_DATES[rng.integers(len(_MSMT_DATES))]
        time_of_day = _MSMT_TIMES[rng.integers(len(_MSMT_TIMES))]
        return (
            f"{folder}/{shot.pid:04d}/{shot.pid:04d}_{index:03d}_{shot.camera:02d}_"
            f"{date}{time_of_day}_{rng.integers(1, 10_000):04d}_{rng.integers(0, 3)}.jpg"
        )

    return name


def _veri_namer(rng: np.random.Generator) -> Namer:
    """Paths like ``image_query/0002_c002_00030600_0.jpg``."""
    used: set[str] = set()

    def name(shot: _Shot) -> str:
        name = _unique(used, lambda: (
            f"{shot.pid:04d}_c{shot.camera:03d}_{rng.integers(1, 100_000_000):08d}_{rng.integers(0, 10)}.jpg"
        ))
        return f"{veri.SPLIT_FOLDERS[shot.split]}/{name}"

    return name


def _vehicleid_namer() -> Namer:
    """Paths like ``image/0000001.jpg``: image ids counted from 1."""
    counter = iter(range(1, 10_000_000))
    return lambda shot: f"{vehicleid.IMAGE_FOLDER}/{next(counter):07d}.jpg"


def _veriwild_namer() -> Namer:
    """Paths like ``images/00001/000001.jpg``: image ids counted from 1 over the whole dataset."""
    counter = iter(range(1, 1_000_000))
    return lambda shot: f"{veriwild.IMAGE_FOLDER}/{shot.pid:05d}/{next(counter):06d}.jpg"


def _unique(used: set[str], draw: Callable[[], str]) -> str:
    """Draw names until one is new (collisions are rare; this keeps them impossible)."""
    candidate = draw()
    while candidate in used:
        candidate = draw()
    used.add(candidate)
    return candidate


# --------------------------------------------------------------------------- writing


def _prepare_split_folders(data_dir: Path, overwrite: bool, names: dict[str, str] = SPLIT_FOLDERS) -> None:
    """Create empty Market-style split folders (``names``: split -> folder), refusing to mix with old files."""
    folders = [data_dir / names[split] for split in ("train", "query", "gallery")]
    _clear_or_refuse(folders, overwrite)
    for folder in folders:
        folder.mkdir(parents=True)


def _prepare_msmt_folder(data_dir: Path, image_folders: tuple[str, str], overwrite: bool) -> None:
    """Create empty MSMT17 image folders; old list files and folders are refused or removed."""
    entries = [data_dir / name for name in image_folders] + [data_dir / name for name in LIST_FILES.values()]
    _clear_or_refuse(entries, overwrite)
    for name in image_folders:
        (data_dir / name).mkdir(parents=True)


def _prepare_list_dataset(data_dir: Path, image_folder: str, list_folder: str, overwrite: bool) -> None:
    """Create the empty image and list folders of a list-file dataset (VehicleID, VERI-Wild)."""
    folders = [data_dir / image_folder, data_dir / list_folder]
    _clear_or_refuse(folders, overwrite)
    for folder in folders:
        folder.mkdir(parents=True)


def _clear_or_refuse(entries: list[Path], overwrite: bool) -> None:
    existing = [entry for entry in entries if entry.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists; pass overwrite=True to replace the "
            f"synthetic dataset, or write to another root"
        )
    for entry in existing:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_images(
    rng: np.random.Generator,
    shots: list[_Shot],
    data_dir: Path,
    namer: Namer,
    image_size: tuple[int, int],
) -> list[str]:
    """Render and save every shot; return each one's path relative to ``data_dir``."""
    looks = _Looks(int(rng.integers(2**31)), image_size)
    relative_paths = []
    for shot in shots:
        relative = namer(shot)
        path = data_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(looks.render(shot, rng)).save(path, format="JPEG", quality=JPEG_QUALITY)
        relative_paths.append(relative)
    return relative_paths


def _write_list_files(data_dir: Path, shots: list[_Shot], relative_paths: list[str]) -> None:
    """MSMT17 list files: ``<path relative to the image folder> <pid>`` per line."""
    lines: dict[str, list[str]] = {split: [] for split in LIST_FILES}
    for shot, relative in zip(shots, relative_paths):
        inside_image_folder = relative.split("/", 1)[1]
        lines[shot.split].append(f"{inside_image_folder} {shot.pid}\n")
    for split, file_name in LIST_FILES.items():
        (data_dir / file_name).write_text("".join(lines[split]), encoding="utf-8")


def _msmt_version_folder(version: str) -> str:
    """``"V1"``/``"MSMT17_V1"`` -> ``"MSMT17_V1"`` (same for V2)."""
    folder = version.strip().upper()
    if not folder.startswith("MSMT17_"):
        folder = f"MSMT17_{folder}"
    if folder not in VERSIONS:
        raise ValueError(f"version must be 'V1' or 'V2', got {version!r}")
    return folder


# --------------------------------------------------------------------------- images


# Appearance kinds; their index seeds the clothing, so every kind draws apart.
_KINDS = ("train", "test", "distractor", "junk")


class _Looks:
    """Renders people whose clothing depends on their identity only.

    Colours and stripes come from a generator seeded by (seed, identity), so
    an identity looks the same in every image; cameras change tint and
    brightness, every image gets its own background, a shift and noise.
    """

    def __init__(self, seed: int, image_size: tuple[int, int]) -> None:
        self.seed = seed
        self.height, self.width = image_size
        self.rows = np.arange(self.height, dtype=np.float32)[:, None]
        self.cols = np.arange(self.width, dtype=np.float32)[None, :]

    def render(self, shot: _Shot, rng: np.random.Generator) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 image of ``shot``."""
        top, accent, bottom, period = self._clothing(shot.appearance)
        tint, brightness = self._camera(shot.camera)
        # A plain per-image background: shared by nobody, so it never decides a match.
        background = rng.uniform(100, 160) + tint
        shift_x = int(rng.integers(-self.width // 16, self.width // 16 + 1))
        shift_y = int(rng.integers(-self.height // 32, self.height // 32 + 1))
        image = np.broadcast_to(background, (self.height, self.width, 3)).astype(np.float32)
        body = self._body_mask(shift_x)
        y = self.rows - shift_y
        head = body & (y >= 0.02 * self.height) & (y < 0.14 * self.height)
        torso = body & (y >= 0.14 * self.height) & (y < 0.55 * self.height)
        legs = body & (y >= 0.55 * self.height) & (y < 0.98 * self.height)
        stripes = np.broadcast_to(np.sin(2 * np.pi * y / period) > 0, body.shape)
        image[head] = (224, 180, 150)
        image[torso & stripes] = top
        image[torso & ~stripes] = accent
        image[legs] = bottom
        noisy = image * brightness + rng.normal(0.0, 6.0, image.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def _body_mask(self, shift_x: int) -> np.ndarray:
        x = self.cols - shift_x
        return np.broadcast_to((x >= 0.15 * self.width) & (x < 0.85 * self.width), (self.height, self.width))

    def _clothing(self, appearance: tuple[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        kind, number = appearance
        identity_rng = np.random.default_rng([self.seed, _KINDS.index(kind), number])
        top, accent, bottom = identity_rng.integers(0, 256, size=(3, 3)).astype(np.float32)
        period = float(identity_rng.uniform(4.0, 16.0)) * self.height / 128
        return top, accent, bottom, period

    def _camera(self, camera: int) -> tuple[np.ndarray, float]:
        """A colour tint and a brightness factor, fixed per camera."""
        camera_rng = np.random.default_rng([self.seed, len(_KINDS), camera])
        tint = camera_rng.uniform(-12, 12, size=3).astype(np.float32)
        return tint, float(camera_rng.uniform(0.92, 1.08))

