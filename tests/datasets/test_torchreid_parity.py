"""Our readers list the same (path, pid, camid) as torchreid's readers on the same trees.

torchreid's reader files run unchanged; only their base class is a stand-in
(see ``torchreid_readers.py``), so the folder resolution, the file-name regex,
the junk filtering and the list-file parsing compared here are torchreid's.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from modelzoo.datasets import read_dataset

from . import torchreid_readers
from .conftest import LAYOUTS

# our name -> (torchreid file, class name, does torchreid relabel train pids?)
_TORCHREID = {
    "market1501": ("market1501.py", "Market1501", True),
    "dukemtmcreid": ("dukemtmcreid.py", "DukeMTMCreID", True),
    "msmt17": ("msmt17.py", "MSMT17", False),
}


def _torchreid_dataset(name: str, root: Path):
    file_name, class_name, _ = _TORCHREID[name]
    reader_class = getattr(torchreid_readers.load(file_name), class_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecated-layout warning is tested below
        return reader_class(root=str(root))


def _ours(records) -> list[tuple[Path, int, int]]:
    return [(record.path, record.pid, record.camid) for record in records]


def _theirs(items) -> list[tuple[Path, int, int]]:
    return [(Path(path), pid, camid) for path, pid, camid in items]


def _assert_train_matches(ours, theirs, relabelled: bool) -> None:
    if not relabelled:
        assert ours == theirs
        return
    # torchreid relabels train pids to 0..N-1 (in set order); the images,
    # cameras and the grouping into identities must still agree.
    assert sorted((path, camid) for path, _, camid in ours) == sorted((path, camid) for path, _, camid in theirs)
    label_of = {path: label for path, label, _ in theirs}
    mapping = {pid: label_of[path] for path, pid, _ in ours}
    assert len(set(mapping.values())) == len(mapping)
    assert all(mapping[pid] == label_of[path] for path, pid, _ in ours)


@pytest.mark.parametrize("key", ["market", "market-unversioned", "duke", "msmt-v1", "msmt-v2"])
def test_same_records_as_torchreid(synthetic_roots, key):
    name = LAYOUTS[key][0]
    root = synthetic_roots[key]
    ours = read_dataset(name, root)
    theirs = _torchreid_dataset(name, root)

    order = (lambda items: items) if name == "msmt17" else sorted  # MSMT17: list-file order
    assert order(_ours(ours.query)) == order(_theirs(theirs.query))
    assert order(_ours(ours.gallery)) == order(_theirs(theirs.gallery))
    _assert_train_matches(_ours(ours.train), _theirs(theirs.train), _TORCHREID[name][2])


@pytest.mark.parametrize("seed", [1, 2])
def test_same_records_as_torchreid_on_other_sizes(fresh_tree, seed):
    root = fresh_tree("market", seed=seed, num_test_ids=15, cameras_per_id=4,
                      images_per_camera=3, num_junk=7, num_distractors=9)
    ours, theirs = read_dataset("market", root), _torchreid_dataset("market1501", root)
    assert sorted(_ours(ours.gallery)) == sorted(_theirs(theirs.gallery))
    assert sorted(_ours(ours.query)) == sorted(_theirs(theirs.query))


def test_torchreid_also_warns_about_the_unversioned_market_layout(synthetic_roots):
    reader_class = torchreid_readers.load("market1501.py").Market1501
    with pytest.warns(UserWarning, match="deprecated"):
        reader_class(root=str(synthetic_roots["market-unversioned"]))
