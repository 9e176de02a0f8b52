"""Google Drive: the confirmation step for large files, quota and "can't scan" pages."""

from __future__ import annotations

import pytest

from modelzoo.testing import checkpoints as ckptgen
from modelzoo.testing.server import Reply, drop_after
from modelzoo import fetch
from modelzoo.formats import read_state_dict
from modelzoo.errors import DownloadError
from modelzoo.fetch.gdrive import file_id
from tests.fetch.helpers import FAST, store_of, with_sources, zip_checkpoint

DRIVE_ID = "1kv8l5laX_YCdIGVCetjlNdzKIA3NvsSt"
QUOTA_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<p>Sorry, you can't view or download this file at this time.</p>
<p>Too many users have viewed or downloaded this file recently. Please try accessing the file again later.
If the file you are trying to access is particularly large or is shared with many people, it may take up to
24 hours to be able to view or download the file.</p></body></html>"""


def virus_scan_page(action: str) -> str:
    """Drive's interstitial for files too large to scan, with its download form."""
    return f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p class="uc-warning-caption">Google Drive can't scan this file for viruses.</p>
<p>resnet50_fc512_market_xent.pth.tar (95M) is too large for Google to scan for viruses.
Would you still like to download this file?</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button" value="Download anyway"/>
<input type="hidden" name="id" value="{DRIVE_ID}">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="5c1f-uuid">
</form></body></html>"""


@pytest.fixture
def drive(loopback_server, monkeypatch):
    monkeypatch.setenv("MODELZOO_GDRIVE_URL", loopback_server.url + "/uc")
    return loopback_server


def drive_checkpoint():
    return with_sources(zip_checkpoint(), (f"https://drive.google.com/uc?id={DRIVE_ID}", "gdrive", "checkpoint"))


def attachment(data: bytes) -> Reply:
    return Reply(
        200,
        data,
        {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": 'attachment; filename="resnet50_fc512_market_xent.pth.tar"',
        },
    )


def test_file_ids_are_read_from_every_link_form():
    assert file_id(f"https://drive.google.com/uc?id={DRIVE_ID}") == DRIVE_ID
    assert file_id(f"https://drive.google.com/file/d/{DRIVE_ID}/view?usp=sharing") == DRIVE_ID
    assert file_id(f"https://drive.google.com/open?id={DRIVE_ID}") == DRIVE_ID
    with pytest.raises(DownloadError, match="no file id"):
        file_id("https://drive.google.com/drive/folders")


def test_the_virus_scan_form_is_followed(drive, state):
    data = ckptgen.checkpoint_bytes(state, "py2")
    drive.route(
        "/uc", lambda r: Reply(200, virus_scan_page(drive.url + "/download").encode(), {"Content-Type": "text/html"})
    )
    drive.serve(
        "/download", data, headers={"Content-Disposition": 'attachment; filename="resnet50_fc512_market_xent.pth.tar"'}
    )
    path = fetch.download(drive_checkpoint(), progress=False, options=FAST)
    assert path.name == "resnet50_fc512_market_xent.pth.tar"
    assert read_state_dict(path).keys() == state.keys()
    (ask,) = drive.requests_for("/uc")
    assert ask.query == {"id": DRIVE_ID, "export": "download"}
    (confirmed,) = drive.requests_for("/download")
    assert confirmed.query == {"id": DRIVE_ID, "export": "download", "confirm": "t", "uuid": "5c1f-uuid"}


def test_the_download_warning_cookie_is_sent_back_as_confirm(drive, state):
    data = ckptgen.checkpoint_bytes(state, "bare")

    def uc(request):
        if request.query.get("confirm") == "AbC1":
            return attachment(data)
        page = "<html><head><title>Google Drive - Virus scan warning</title></head><body>Large file</body></html>"
        headers = {"Content-Type": "text/html", "Set-Cookie": "download_warning_13058876669334088843=AbC1; Path=/"}
        return Reply(200, page.encode(), headers)

    drive.route("/uc", uc)
    path = fetch.download(drive_checkpoint(), progress=False, options=FAST)
    assert read_state_dict(path).keys() == state.keys()
    assert [r.query.get("confirm") for r in drive.requests_for("/uc")] == [None, "AbC1"]


def test_an_old_style_confirm_link_is_followed(drive, state):
    data = ckptgen.checkpoint_bytes(state, "legacy")

    def uc(request):
        if request.query.get("confirm") == "Zx_9":
            return attachment(data)
        href = f"/uc?export=download&amp;confirm=Zx_9&amp;id={DRIVE_ID}"
        link = f'<a id="uc-download-link" href="{href}">Download anyway</a>'
        return Reply(200, f"<html><body>{link}</body></html>".encode(), {"Content-Type": "text/html"})

    drive.route("/uc", uc)
    assert fetch.download(drive_checkpoint(), progress=False, options=FAST).is_file()


def test_a_small_file_comes_without_confirmation(drive, state):
    drive.route("/uc", lambda r: attachment(ckptgen.checkpoint_bytes(state, "bare")))
    assert fetch.download(drive_checkpoint(), progress=False, options=FAST).is_file()
    assert len(drive.requests_for("/uc")) == 1


def test_a_quota_page_is_reported_as_such(drive):
    drive.route("/uc", lambda r: Reply(200, QUOTA_PAGE.encode(), {"Content-Type": "text/html"}))
    with pytest.raises(DownloadError) as info:
        fetch.download(drive_checkpoint(), progress=False, options=FAST)
    message = str(info.value)
    assert "quota exceeded" in message and "Google Drive" in message
    assert "modelzoo import resnet50_fc512 market1501 /path/to/resnet50_fc512_market_softmax.zip" in message
    assert fetch.cached_path(drive_checkpoint()) is None
    assert len(drive.requests_for("/uc")) == 1  # a quota page is not retried


def test_a_cant_scan_page_without_a_form_is_reported_as_such(drive):
    page = (
        "<html><title>Google Drive - Virus scan warning</title>"
        "<p>Google Drive can't scan this file for viruses.</p></html>"
    )
    drive.route("/uc", lambda r: Reply(200, page.encode(), {"Content-Type": "text/html"}))
    with pytest.raises(DownloadError, match="can't scan this file for viruses.*no confirmation link"):
        fetch.download(drive_checkpoint(), progress=False, options=FAST)


def test_a_sign_in_page_says_the_file_is_not_public(drive):
    page = (
        "<html><title>Google Drive: Sign-in</title>"
        '<a href="https://accounts.google.com/ServiceLogin">Sign in</a></html>'
    )
    drive.route("/uc", lambda r: Reply(200, page.encode(), {"Content-Type": "text/html"}))
    with pytest.raises(DownloadError, match="not public"):
        fetch.download(drive_checkpoint(), progress=False, options=FAST)


def test_a_confirmed_download_that_breaks_resumes(drive, state):
    data = ckptgen.checkpoint_bytes(state, "py2")
    drive.route("/uc", lambda r: Reply(200, virus_scan_page("/download").encode(), {"Content-Type": "text/html"}))
    drive.serve("/download", data)
    drive.fail("/download", drop_after(len(data) // 2))
    path = fetch.download(drive_checkpoint(), progress=False, options=FAST)
    assert read_state_dict(path).keys() == state.keys()
    downloads = drive.requests_for("/download")
    assert downloads[-1].status == 206 and downloads[-1].range.startswith("bytes=")
    assert not list(store_of(drive_checkpoint()).folder.glob("*.incomplete"))
