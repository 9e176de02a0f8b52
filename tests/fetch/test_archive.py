"""Safe extraction of the one weights file from a model-zoo zip."""

from __future__ import annotations

import zipfile

import pytest

from modelzoo.testing import checkpoints as ckptgen
from tests import hostile
from modelzoo.errors import ArchiveError
from modelzoo.fetch.archive import ArchiveLimits, extract_weights, is_weights_name
from modelzoo.formats.sniff import ARCHIVE, CHECKPOINT, file_kind

WEIGHTS = b"\x80\x02weights"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.pth", True),
        ("a.pth.tar", True),
        ("model.pth.tar-60", True),
        ("a.pt", True),
        ("osnet_ain_x0_25_imagenet.pyth", True),
        ("a.tar", False),
        ("log_train.txt", False),
        ("a.pth.tar-x", False),
        ("a.zip", False),
    ],
)
def test_weights_names(name, expected):
    assert is_weights_name(name) is expected


def test_a_qmul_zip_yields_its_weights_file_only(tmp_path, state):
    archive = ckptgen.write_qmul_zip(tmp_path / "resnet50_fc512_market_softmax.zip", state)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_weights(archive, out)
    assert result.member == "resnet50_fc512_market_xent/resnet50_fc512_market_xent.pth.tar"
    assert [p.name for p in out.iterdir()] == ["resnet50_fc512_market_xent.pth.tar"]
    with zipfile.ZipFile(archive) as z:
        assert result.path.read_bytes() == z.read(result.member)


def test_a_torch_zip_checkpoint_is_not_mistaken_for_an_archive(tmp_path, state):
    modern = ckptgen.write_checkpoint(tmp_path / "model.pth.tar", state, "torchreid-dict")
    assert zipfile.is_zipfile(modern)
    assert file_kind(modern) == CHECKPOINT
    assert file_kind(ckptgen.write_qmul_zip(tmp_path / "x_softmax.zip", state)) == ARCHIVE
    assert file_kind(ckptgen.write_checkpoint(tmp_path / "legacy.pth.tar", state, "legacy")) == CHECKPOINT


@pytest.mark.parametrize(
    "members, symlinks, message",
    [
        ({"../evil.pth.tar": WEIGHTS}, None, r"outside the archive"),
        ({"model/../../evil.pth": WEIGHTS}, None, r"outside the archive"),
        ({"/etc/evil.pth": WEIGHTS}, None, r"absolute path"),
        ({"C:/evil.pth": WEIGHTS}, None, r"absolute path"),
        ({"m/readme.txt": b"hi"}, {"m/model.pth.tar": "/etc/passwd"}, r"symbolic link"),
        ({"m/readme.txt": b"hi"}, None, r"no weights file.*m/readme.txt"),
        ({"m/a.pth.tar": WEIGHTS, "m/model-best.pth.tar": WEIGHTS}, None, r"several weights files"),
    ],
)
def test_unsafe_or_ambiguous_archives_are_refused(tmp_path, members, symlinks, message):
    archive = hostile.write_zip(tmp_path / "bad.zip", members, symlinks)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match=message):
        extract_weights(archive, out)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "evil.pth.tar").exists() and not (tmp_path / "evil.pth").exists()


def test_mac_resource_forks_are_ignored(tmp_path):
    archive = hostile.write_zip(
        tmp_path / "mac.zip", {"m/a.pth.tar": WEIGHTS, "__MACOSX/m/._a.pth.tar": b"fork", "m/._a.pth.tar": b"x"}
    )
    out = tmp_path / "out"
    out.mkdir()
    assert extract_weights(archive, out).path.read_bytes() == WEIGHTS


def test_absurd_compression_ratios_and_sizes_are_refused(tmp_path):
    archive = hostile.write_zip(tmp_path / "bomb.zip", {"m/a.pth": b"\0" * (4 << 20)})
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="expands"):
        extract_weights(archive, out)
    with pytest.raises(ArchiveError, match="expand to"):
        extract_weights(archive, out, ArchiveLimits(max_total_bytes=1 << 20, max_ratio=1e9))
    assert extract_weights(archive, out, ArchiveLimits(max_ratio=1e9)).path.stat().st_size == 4 << 20


def test_a_damaged_archive_is_refused(tmp_path, state):
    archive = ckptgen.write_qmul_zip(tmp_path / "x_softmax.zip", state)
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("x_xent/x_xent.pth.tar")
    middle = info.header_offset + 60 + info.compress_size // 2
    data[middle : middle + 16] = b"\xff" * 16  # corrupt the compressed weights; the directory stays valid
    archive.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArchiveError, match="damaged"):
        extract_weights(archive, out)
