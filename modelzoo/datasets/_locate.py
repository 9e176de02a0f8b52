"""Find a dataset's folder from whatever ``data_root`` the user passed.

torchreid wants ``<root>/<dataset_dir>/<versioned folder>``; users pass the
parent, the dataset folder or the versioned folder itself, and archives get
unzipped one level too deep.  This module tries the places torchreid would
use, then searches a few levels down so the error can say where the data
actually is and how to move it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from modelzoo.datasets._base import Advice, PathLike, absolute, layout_error
from modelzoo.errors import DatasetLayoutError

# Bounded search for misplaced data: deep enough for a double unzip inside the
# dataset folder (root/market1501/X/X), small enough to stay instant on a
# parent folder holding many datasets.
_SEARCH_DEPTH = 4
_SEARCH_MAX_FOLDERS = 500


@dataclass(frozen=True)
class LayoutSpec:
    """How one dataset sits on disk, as torchreid expects it.

    Attributes:
        display_name: name for messages (``Market-1501``).
        dataset_dir: torchreid's folder under the root (``market1501``).
        versioned_dirs: the folder(s) inside it that hold the data, in the order
            torchreid tries them (``MSMT17_V1`` before ``MSMT17_V2``); empty
            when the dataset folder holds the data itself (fast-reid's vehicle datasets).
        markers: entries whose presence marks the folder that holds the data.
        image_dirs: folders full of images, never searched (they can hold 80k files).
        search_hint: a word (lower case) that a misplaced copy's path must contain
            (``duke``): Market-1501 and DukeMTMC-reID share their folder names, so
            the markers alone cannot tell them apart.
        expected_layout: the layout spelled out, ``<data_root>`` standing for the root.
        obtain_advice: where the data comes from, for the not-found message.
    """

    display_name: str
    dataset_dir: str
    versioned_dirs: tuple[str, ...]
    markers: tuple[str, ...]
    image_dirs: frozenset[str]
    search_hint: str
    expected_layout: str
    obtain_advice: str


def find_data_dir(spec: LayoutSpec, data_root: PathLike) -> Path:
    """Return the folder that holds the dataset's splits.

    Args:
        spec: the dataset's layout.
        data_root: the parent of ``spec.dataset_dir``, the dataset folder, or
            the versioned folder itself.

    Returns:
        The absolute folder that contains the markers of ``spec``.

    Raises:
        DatasetLayoutError: the root does not exist, the data is nested one
            level too deep or elsewhere below the root, or it is absent.
    """
    root = absolute(data_root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise layout_error(
            f"data root {root} {what}.",
            f"pass the folder that holds {spec.dataset_dir}/ (expected layout: "
            f"{_layout_text(spec, root)}). {_fill(spec.obtain_advice, root)}",
        )
    looked: list[Path] = []
    for candidate in _candidates(spec, root):
        looked.append(candidate)
        if has_markers(spec, candidate):
            return candidate
        if candidate.name in spec.versioned_dirs and candidate.is_dir():
            # The versioned folder exists but is empty of data: almost always
            # an archive unzipped into a folder of its own name.
            raise _versioned_folder_error(spec, root, candidate)
    found = search_below(spec, root)
    if found is not None:
        raise _error_from(misplaced_advice(spec, root, found))
    raise _error_from(_not_found_advice(spec, root, looked))


def has_markers(spec: LayoutSpec, folder: Path) -> bool:
    """True when ``folder`` holds at least one of the entries that mark the data."""
    return folder.is_dir() and any((folder / marker).exists() for marker in spec.markers)


def search_below(spec: LayoutSpec, root: Path) -> Path | None:
    """Breadth-first search for a folder with the markers, a few levels below ``root``."""
    queue: deque[tuple[Path, int]] = deque([(root, 0)])
    visited = 0
    while queue and visited < _SEARCH_MAX_FOLDERS:
        folder, depth = queue.popleft()
        visited += 1
        if depth > 0 and has_markers(spec, folder) and _mentions(spec, root, folder):
            return folder
        if depth < _SEARCH_DEPTH:
            queue.extend((child, depth + 1) for child in _subfolders(spec, folder))
    return None


def misplaced_advice(spec: LayoutSpec, root: Path, found: Path) -> Advice:
    """Explain that the data sits at ``found`` and how to put it where torchreid looks."""
    target = root / spec.dataset_dir / spec.versioned_dirs[0] if spec.versioned_dirs else root / spec.dataset_dir
    nested = _repeated_component(root, found)
    if nested is not None:
        inner = nested / nested.name
        return Advice(
            f"{spec.display_name} is doubly nested: {inner} (the archive was "
            f"unzipped into a folder of the same name).",
            f"move the contents one level up: mv '{inner}'/* '{nested}'/ && "
            f"rmdir '{inner}' -- or pass data_root (--data-root) {found}.",
        )
    return Advice(
        f"{spec.display_name} data found at {found}, not where torchreid looks "
        f"for it (expected layout: {_layout_text(spec, root)}).",
        f"move or rename it to {target} -- or pass data_root (--data-root) {found}.",
    )


def _mentions(spec: LayoutSpec, root: Path, folder: Path) -> bool:
    """True when the path from ``root`` (included) down to ``folder`` names the dataset."""
    parts = (root.name,) + folder.relative_to(root).parts
    return any(spec.search_hint in part.lower() for part in parts)


def _candidates(spec: LayoutSpec, root: Path) -> list[Path]:
    """Places to look, in order; the root itself last unless it is a versioned folder."""
    inside_root = [root / name for name in spec.versioned_dirs]
    inside_dataset_dir = [root / spec.dataset_dir / name for name in spec.versioned_dirs]
    ordered = inside_root + inside_dataset_dir + [root / spec.dataset_dir]
    if root.name in spec.versioned_dirs:
        return [root] + ordered
    return ordered + [root]


def _subfolders(spec: LayoutSpec, folder: Path) -> list[Path]:
    """Sub-folders worth searching: no image folders, no hidden ones, sorted."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # unreadable folder: nothing to find there
        return []
    return [
        entry
        for entry in entries
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in spec.image_dirs
    ]


def _versioned_folder_error(spec: LayoutSpec, root: Path, folder: Path) -> DatasetLayoutError:
    found = search_below(spec, folder)
    if found is not None:
        return _error_from(misplaced_advice(spec, root, found))
    return layout_error(
        f"{folder} exists but holds none of: {', '.join(spec.markers)}.",
        f"unpack the archive again into {folder.parent} (expected layout: "
        f"{_layout_text(spec, root)}). {_fill(spec.obtain_advice, root)}",
    )


def _error_from(advice: Advice) -> DatasetLayoutError:
    return layout_error(advice.problem, advice.fix)


def _not_found_advice(spec: LayoutSpec, root: Path, looked: list[Path]) -> Advice:
    places = "".join(f"\n  - {path}" for path in looked)
    return Advice(
        f"no {spec.display_name} data found under {root}. Looked for "
        f"{', '.join(spec.markers)} in:{places}",
        f"put the data in the expected layout: {_layout_text(spec, root)}, or pass "
        f"the folder that holds it as data_root (--data-root). {_fill(spec.obtain_advice, root)}",
    )


def _layout_text(spec: LayoutSpec, root: Path) -> str:
    return _fill(spec.expected_layout, root)


def _fill(text: str, root: Path) -> str:
    """``text`` with ``<data_root>`` replaced by the actual root."""
    return text.replace("<data_root>", str(root))


def _repeated_component(root: Path, found: Path) -> Path | None:
    """The outer folder of the first ``X/X`` pair from ``root`` down to ``found``, or None.

    Folders above ``root`` are not the dataset's business, so they are ignored.
    """
    outer = root
    for part in found.relative_to(root).parts:
        if part == outer.name:
            return outer
        outer = outer / part
    return None
