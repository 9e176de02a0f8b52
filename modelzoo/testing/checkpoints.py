"""Write checkpoints in every format the zoos used, from any state dict (for tests, demos and benchmarks).

Vintages (torchreid-zoo-facts.md 0.4, 1.4-1.6):

``torchreid-dict``   torch >= 1.6 zip file of ``{state_dict, epoch, rank1, optimizer,
                     scheduler}`` with ``rank1`` a NumPy float64 scalar (what current
                     torchreid writes, and what breaks ``weights_only=True``, #592)
``bare``             a plain state dict (the Google Drive OSNet files)
``module-prefixed``  a bare state dict saved from ``nn.DataParallel`` (``module.`` keys)
``legacy``           the torchreid dict in the pre-1.6 non-zip serialization
``py2``              the legacy dict as Python 2 pickled it: every string is a
                     Python-2 ``str`` (SHORT_BINSTRING bytes), NumPy scalars hold raw
                     bytes, and one field is latin1 text that is not UTF-8, so it
                     needs ``encoding='latin1'`` (#3, #43, #231)

Also: QMUL-style zips (one folder holding ``<stem>_xent.pth.tar`` and a
training log); fast-reid's files (``{"model": state_dict, "iteration": N}``
with the era's key names and the ``pixel_mean`` / ``pixel_std`` buffers,
:func:`write_fastreid_checkpoint`); and files named and shaped as a manifest
entry declares, in its layout (a folder of them is a valid ``MODELZOO_MIRROR``).  Every file written here is
benign; the malicious pickles and zips the security tests need live in the
test suite only.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import types
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from modelzoo.formats.fastreid import FASTREID_PIXEL_MEAN, FASTREID_PIXEL_STD, file_key

VINTAGES = ("torchreid-dict", "bare", "module-prefixed", "legacy", "py2")
PY2_NOTE = "entra\xeenement sur Market-1501 (r\xe9sum\xe9)"  # latin1, not valid UTF-8 once encoded


def toy_state_dict(seed: int = 0, num_classes: int = 5, fc_width: int = 128) -> dict[str, torch.Tensor]:
    """A small state dict with conv, batch-norm, fc and classifier entries (for fetch tests).

    The ``fc`` layer (``fc_width`` x 64 floats, 32 KiB by default) makes files
    span several network chunks, so a transfer can break in the middle.
    """
    generator = torch.Generator().manual_seed(seed)
    return {
        "fc.0.weight": torch.randn(fc_width, 64, generator=generator),
        "conv1.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "bn1.weight": torch.rand(4, generator=generator) + 0.5,
        "bn1.bias": torch.randn(4, generator=generator),
        "bn1.running_mean": torch.randn(4, generator=generator),
        "bn1.running_var": torch.rand(4, generator=generator) + 0.5,
        "bn1.num_batches_tracked": torch.tensor(seed + 7),
        "classifier.weight": torch.randn(num_classes, fc_width, generator=generator),
        "classifier.bias": torch.randn(num_classes, generator=generator),
    }


def _training_state(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """Real optimizer and scheduler state dicts, as torchreid's engine saves them."""
    params = [torch.nn.Parameter(v.detach().clone().float()) for v in state_dict.values() if v.is_floating_point()][:2]
    optimizer = torch.optim.Adam(params, lr=0.0003, weight_decay=5e-4, amsgrad=True)
    torch.stack([p.sum() for p in params]).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[20, 40], gamma=0.1)
    return optimizer.state_dict(), scheduler.state_dict()


def torchreid_dict(state_dict: Mapping[str, torch.Tensor], epoch: int = 60) -> dict:
    """The dict torchreid's engine saves (``rank1`` is a NumPy float64 scalar)."""
    optimizer, scheduler = _training_state(state_dict)
    return {
        "state_dict": dict(state_dict),
        "epoch": epoch,
        "rank1": np.float64(0.908),
        "optimizer": optimizer,
        "scheduler": scheduler,
    }


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us choose opcodes
    """Pickles every ``str`` and ``bytes`` as Python 2 did: SHORT_BINSTRING raw bytes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)  # type: ignore[attr-defined]
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)  # type: ignore[attr-defined]
        self.memoize(obj)  # type: ignore[attr-defined]

    dispatch[str] = _save_py2_string  # type: ignore[assignment]
    dispatch[bytes] = _save_py2_string  # type: ignore[assignment]


def _py2_dump(obj: object, stream: io.BufferedIOBase, protocol: int = 2) -> None:
    _Py2Pickler(stream, protocol).dump(obj)


_PY2_PICKLE_MODULE = types.SimpleNamespace(Pickler=_Py2Pickler, dump=_py2_dump, __name__="py2_pickle")


def _python2_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """A QMUL-era dict: state_dict, epoch, rank1 and a latin1 note."""
    return {"state_dict": dict(state_dict), "epoch": 60, "rank1": np.float64(0.474), "note": PY2_NOTE}


def checkpoint_object(state_dict: Mapping[str, torch.Tensor], vintage: str) -> object:
    """The Python object a checkpoint of ``vintage`` holds."""
    if vintage in ("torchreid-dict", "legacy"):
        return torchreid_dict(state_dict)
    if vintage == "bare":
        return dict(state_dict)
    if vintage == "module-prefixed":
        return {f"module.{key}": value for key, value in state_dict.items()}
    if vintage == "py2":
        return _python2_dict(state_dict)
    raise ValueError(f"unknown vintage {vintage!r}; one of {VINTAGES}")


def checkpoint_bytes(state_dict: Mapping[str, torch.Tensor], vintage: str = "torchreid-dict") -> bytes:
    """The bytes of a checkpoint file of ``vintage``."""
    obj = checkpoint_object(state_dict, vintage)
    buffer = io.BytesIO()
    if vintage == "py2":
        torch.save(
            obj, buffer, pickle_module=_PY2_PICKLE_MODULE, pickle_protocol=2, _use_new_zipfile_serialization=False
        )
    elif vintage == "legacy":
        torch.save(obj, buffer, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, buffer)
    return buffer.getvalue()


def write_checkpoint(
    path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], vintage: str = "torchreid-dict"
) -> Path:
    """Write a checkpoint file of ``vintage`` (see the module docstring); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(checkpoint_bytes(state_dict, vintage))
    return path


def fastreid_object(
    state_dict: Mapping[str, torch.Tensor],
    era: str,
    pixel_mean: Sequence[float] = FASTREID_PIXEL_MEAN,
    pixel_std: Sequence[float] = FASTREID_PIXEL_STD,
) -> dict:
    """What a fast-reid file of ``era`` holds for our ``state_dict``: ``{"model": ..., "iteration": ...}``.

    The keys are the era's (the inverse of ``modelzoo.formats.fastreid``'s
    rename table), preceded by the in-model normalisation buffers (float32,
    shape (1, 3, 1, 1)), as fast-reid's ``Baseline`` registers them first.
    Tensors that are one tensor in ``state_dict`` stay one tensor (MGN's
    shared GeM).  What else the release files hold is unknown (facts 7):
    ``iteration`` is what fast-reid's trainer saves beside the model.
    """
    pixels = {name: torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)
              for name, values in (("pixel_mean", pixel_mean), ("pixel_std", pixel_std))}
    model = {**pixels, **{file_key(key, era): value for key, value in state_dict.items()}}
    return {"model": model, "iteration": 0}


def write_fastreid_checkpoint(
    path: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    era: str,
    pixel_mean: Sequence[float] = FASTREID_PIXEL_MEAN,
    pixel_std: Sequence[float] = FASTREID_PIXEL_STD,
) -> Path:
    """Write our ``state_dict`` as a fast-reid file of ``era`` (see :func:`fastreid_object`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fastreid_object(state_dict, era, pixel_mean, pixel_std), path)
    return path


def qmul_stem(zip_name: str) -> str:
    """The folder and file stem inside a QMUL zip.

    ``resnet50_fc512_market_softmax.zip`` -> ``resnet50_fc512_market_xent``.
    """
    stem = zip_name[: -len(".zip")] if zip_name.endswith(".zip") else zip_name
    return stem[: -len("_softmax")] + "_xent" if stem.endswith("_softmax") else stem


def write_qmul_zip(
    zip_path: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    vintage: str = "py2",
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A QMUL-style zip: ``<stem>/<stem>.pth.tar`` plus a training log and script.

    Args:
        zip_path: where to write, e.g. ``.../resnet50_fc512_market_softmax.zip``.
        state_dict: the weights.
        vintage: the checkpoint inside (QMUL-era files were Python-2 pickles).
        compression: zip method; ZIP_STORED skips deflating 100 MB of random
            floats (seconds each) where a test writes many archives.
    """
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    stem = qmul_stem(zip_path.name)
    with zipfile.ZipFile(zip_path, "w", compression=compression, compresslevel=1) as archive:
        archive.writestr(f"{stem}/", b"")
        archive.writestr(f"{stem}/{stem}.pth.tar", checkpoint_bytes(state_dict, vintage))
        archive.writestr(f"{stem}/log_train.txt", "Epoch: [60][100/101]\tLoss 1.0123\n==> Test\nRank-1  : 90.8%\n" * 20)
        archive.writestr(f"{stem}/train_imgreid_xent.sh", "python train_imgreid_xent.py -s market1501 --max-epoch 60\n")
    return zip_path


def write_for_checkpoint(
    checkpoint,
    directory: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor],
    vintage: str | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write ``checkpoint.filename`` in ``directory`` in the format and layout the manifest declares.

    A zip entry gets a QMUL-style zip (Python-2 checkpoint inside unless
    ``vintage`` says otherwise); a checkpoint entry gets the file itself
    (``torchreid-dict`` unless ``vintage`` says otherwise); a fast-reid entry
    gets a fast-reid file of its era, with the pixel buffers its
    preprocessing implies (it has no vintages).  A folder of such files is a
    valid ``MODELZOO_MIRROR``.

    Raises:
        ValueError: a vintage for a fast-reid entry.
    """
    path = Path(directory) / checkpoint.filename
    if checkpoint.layout == "fastreid":
        if vintage is not None:
            raise ValueError(f"{checkpoint.name} is a fast-reid file: it has no torchreid vintage ({vintage!r})")
        return write_fastreid_checkpoint(path, state_dict, **checkpoint.reader_options)
    if checkpoint.format == "zip":
        return write_qmul_zip(path, state_dict, vintage or "py2", compression)
    return write_checkpoint(path, state_dict, vintage or "torchreid-dict")


def write_untrained_checkpoint(checkpoint, directory: str | os.PathLike, seed: int = 0,
                               vintage: str | None = None) -> Path:
    """``checkpoint.filename`` in ``directory``, holding its architecture's random initial weights.

    What the demo serves: a file in the zoo's real format, layout and name
    (fast-reid's: its era's keys and pixel buffers), with weights nobody
    trained (so its accuracy means nothing).
    """
    from modelzoo.models import build

    torch.manual_seed(seed)
    model = build(checkpoint.name, num_classes=checkpoint.num_classes)
    return write_for_checkpoint(checkpoint, directory, model.state_dict(), vintage=vintage)
