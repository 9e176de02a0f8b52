"""The doctor's findings, levels, messages and exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import modelzoo.datasets.doctor as doctor_module
from modelzoo.datasets import Finding, check_layout, format_findings, read_dataset
from modelzoo.datasets.doctor import doctor

from .conftest import LAYOUTS

MARKET = Path("market1501") / "Market-1501-v15.09.15"
MSMT_V1 = Path("msmt17") / "MSMT17_V1"


def _levels(findings: list[Finding]) -> list[str]:
    return [finding.level for finding in findings]


def _only(findings: list[Finding], level: str, text: str) -> Finding:
    matching = [f for f in findings if f.level == level and text in f.message]
    assert len(matching) == 1, format_findings(findings)
    return matching[0]


def test_healthy_synthetic_market(synthetic_roots):
    root = synthetic_roots["market"]
    split = read_dataset("market", root)

    findings = check_layout("market", root)

    assert "error" not in _levels(findings)
    found = _only(findings, "ok", "found Market-1501")
    assert str(root / MARKET) in found.message and "Market-1501-v15.09.15" in found.message
    counts = _only(findings, "warning", "image counts differ from the real Market-1501")
    assert f"query: {len(split.query)} images, real 3,368 ({3368 - len(split.query):,} fewer)" in counts.message
    assert f"train: {len(split.train)} images, real 12,936 ({12936 - len(split.train):,} fewer)" in counts.message
    junk = len(list((root / MARKET / "bounding_box_test").glob("-1_*.jpg")))
    assert f"gallery: {len(split.gallery)} images (+ {junk} junk images with pid -1, dropped)" in counts.message
    assert "evaluation still works" in counts.fix
    total = len(split.query) + len(split.gallery) + len(split.train)
    _only(findings, "ok", f"{total} sampled images decode")
    _only(findings, "ok", f"all {len(split.query)} query images have gallery matches from other cameras")


def test_counts_equal_to_the_real_dataset_are_ok(synthetic_roots, monkeypatch):
    split = read_dataset("duke", synthetic_roots["duke"])
    counts = {"train": len(split.train), "query": len(split.query), "gallery": len(split.gallery)}
    monkeypatch.setitem(doctor_module.REAL_COUNTS, "dukemtmcreid", counts)

    findings = check_layout("duke", synthetic_roots["duke"])

    _only(findings, "ok", "image counts match the real DukeMTMC-reID")
    assert "warning" not in _levels(findings)


def test_more_images_than_the_real_dataset(synthetic_roots, monkeypatch):
    split = read_dataset("duke", synthetic_roots["duke"])
    counts = {"train": len(split.train), "query": len(split.query) - 3, "gallery": len(split.gallery)}
    monkeypatch.setitem(doctor_module.REAL_COUNTS, "dukemtmcreid", counts)

    counts_finding = _only(check_layout("duke", synthetic_roots["duke"]), "warning", "image counts differ")

    assert f"query: {len(split.query)} images, real {len(split.query) - 3} (3 more)" in counts_finding.message
    assert f"train: {len(split.train)} images, as in the real dataset" in counts_finding.message


@pytest.mark.parametrize(("key", "text"), [("msmt-v1", "version V1, the original images"),
                                           ("msmt-v2", "version V2, faces blurred")])
def test_msmt17_version_is_reported(synthetic_roots, key, text):
    findings = check_layout("msmt", synthetic_roots[key])
    _only(findings, "ok", text)
    counts = _only(findings, "warning", "image counts differ from the real MSMT17")
    split = read_dataset("msmt", synthetic_roots[key])
    val_list = synthetic_roots[key] / LAYOUTS[key][2] / "list_val.txt"
    train_and_val = len(split.train) + len(val_list.read_text().splitlines())
    assert f"train (list_train.txt + list_val.txt): {train_and_val} images, real 32,621" in counts.message


def test_missing_folder_is_an_error(fresh_tree):
    root = fresh_tree("market")
    shutil.rmtree(root / MARKET / "bounding_box_test")

    code, report = doctor("market", root)
    findings = check_layout("market", root)

    assert code == 1
    missing = _only(findings, "error", f"missing folder {root / MARKET / 'bounding_box_test'}")
    assert "unpack the complete archive" in missing.fix
    assert f"[error]   missing folder {root / MARKET / 'bounding_box_test'}" in report
    assert report.splitlines()[-1].startswith("1 error(s)")


def test_missing_train_folder_is_only_a_warning(fresh_tree):
    root = fresh_tree("duke")
    shutil.rmtree(root / "dukemtmc-reid" / "DukeMTMC-reID" / "bounding_box_train")

    code, _ = doctor("duke", root)
    warning = _only(check_layout("duke", root), "warning", "missing folder")

    assert code == 0
    assert "bounding_box_train" in warning.message
    assert "Evaluation needs only query and gallery" in warning.fix


@pytest.mark.parametrize(("list_name", "level"), [("list_query.txt", "error"), ("list_val.txt", "warning")])
def test_missing_list_file(fresh_tree, list_name, level):
    root = fresh_tree("msmt")
    (root / MSMT_V1 / list_name).unlink()

    finding = _only(check_layout("msmt", root), level, f"missing list file {root / MSMT_V1 / list_name}")

    assert "original MSMT17_V1/MSMT17_V2 archive" in finding.fix
    assert doctor("msmt", root)[0] == (1 if level == "error" else 0)


def test_v2_folders_in_a_v1_folder(fresh_tree):
    root = fresh_tree("msmt", version="V2")
    (root / "msmt17" / "MSMT17_V2").rename(root / MSMT_V1)
    finding = _only(check_layout("msmt", root), "error", "is named MSMT17_V1 but holds MSMT17_V2")
    assert "rename the folder" in finding.fix


def test_wrong_nesting_is_an_error_with_the_command_to_fix_it(fresh_tree):
    root = fresh_tree("market")
    outer = root / MARKET
    inner = outer / outer.name
    inner.mkdir()
    for entry in list(outer.iterdir()):
        if entry != inner:
            shutil.move(str(entry), str(inner))

    findings = check_layout("market", root)

    assert _levels(findings) == ["error"]
    assert "doubly nested" in findings[0].message
    assert f"mv '{inner}'/*" in findings[0].fix


def test_unversioned_market_is_a_warning(synthetic_roots):
    findings = check_layout("market", synthetic_roots["market-unversioned"])
    warning = _only(findings, "warning", "without the versioned folder")
    assert "Market-1501-v15.09.15" in warning.fix
    assert "error" not in _levels(findings)


def test_unreadable_images_are_listed(fresh_tree):
    root = fresh_tree("market")
    gallery = root / MARKET / "bounding_box_test"
    good = sorted(gallery.glob("0*.jpg"))
    garbage, truncated = gallery / "0001_c1s1_000001_01.jpg", gallery / "0001_c2s1_000002_01.jpg"
    garbage.write_bytes(b"this is not a jpeg at all" * 10)
    data = good[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # passes verify(), fails to decode

    code, report = doctor("market", root, sample_per_split=1000)
    finding = _only(check_layout("market", root, sample_per_split=1000), "error", "cannot be decoded")

    assert code == 1
    assert finding.message.startswith("2 of ")
    assert str(garbage) in finding.message and str(truncated) in finding.message
    assert "extract these files from the archive again" in finding.fix
    assert str(garbage) in report


def test_decoding_can_be_skipped(fresh_tree):
    root = fresh_tree("market")
    (root / MARKET / "query" / "0001_c1s1_000001_01.jpg").write_bytes(b"broken")
    findings = check_layout("market", root, sample_per_split=0)
    assert not [f for f in findings if "decode" in f.message]


def test_listed_but_missing_images(fresh_tree):
    root = fresh_tree("msmt")
    first_gallery = (root / MSMT_V1 / "list_gallery.txt").read_text().splitlines()[0].split(" ")[0]
    (root / MSMT_V1 / "test" / first_gallery).unlink()

    finding = _only(check_layout("msmt", root), "error", "listed but missing on disk")

    assert finding.message.startswith("1 of ")
    assert str(root / MSMT_V1 / "test" / first_gallery) in finding.message


def _delete_gallery_where(root: Path, keep) -> None:
    for path in (root / MARKET / "bounding_box_test").glob("*.jpg"):
        if not keep(path.name):
            path.unlink()


def test_queries_without_cross_camera_matches_are_a_warning(fresh_tree):
    root = fresh_tree("market")
    query = read_dataset("market", root).query
    victim = query[0]
    # Keep only the victim's same-camera gallery images: no valid match left.
    _delete_gallery_where(root, lambda name: not name.startswith(f"{victim.pid:04d}_")
                          or name.startswith(f"{victim.pid:04d}_c{victim.camid + 1}"))
    # The victim's queries from other cameras still match those kept images.
    unmatched = sum(1 for q in query if q.pid == victim.pid and q.camid == victim.camid)

    finding = _only(check_layout("market", root), "warning", "have no gallery image of")

    assert finding.message.startswith(f"{unmatched} of {len(query)} query images")


def test_no_query_with_a_match_is_an_error(fresh_tree):
    root = fresh_tree("market")
    query_pids = {f"{record.pid:04d}_" for record in read_dataset("market", root).query}
    _delete_gallery_where(root, lambda name: name[:5] not in query_pids)

    finding = _only(check_layout("market", root), "error", "no query image has a gallery image")

    assert "same copy" in finding.fix


def test_unknown_dataset_and_missing_root(tmp_path):
    code, report = doctor("cuhk03", tmp_path)
    assert code == 1 and "unknown dataset 'cuhk03'" in report
    code, report = doctor("market", tmp_path / "missing")
    assert code == 1 and "does not exist" in report


def test_format_findings():
    text = format_findings([
        Finding("ok", "fine"),
        Finding("warning", "two\nlines", "do this"),
        Finding("error", "broken", "do that"),
    ])
    assert text.splitlines() == [
        "[ok]      fine",
        "[warning] two",
        "          lines",
        "          fix: do this",
        "[error]   broken",
        "          fix: do that",
        "1 error(s), 1 warning(s): fix the errors before evaluating.",
    ]


def test_doctor_exit_code_and_header(synthetic_roots):
    code, report = doctor("market", synthetic_roots["market"])
    assert code == 0
    assert report.splitlines()[0] == f"modelzoo doctor: market in {synthetic_roots['market']}"
    assert report.splitlines()[-1] == "0 error(s), 1 warning(s): ready for evaluation."


def test_finding_level_is_checked():
    with pytest.raises(ValueError, match="level"):
        Finding("info", "x")
