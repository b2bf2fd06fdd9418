"""The new project form in Chromium against a real server: the errors a user can hit."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mediagen import MediaFactory, VideoSpec
from pages import create_project, wait_for_jobs
from servers import ServerFactory

pytestmark = pytest.mark.e2e


def test_form_checks_before_sending(open_page, server_factory: ServerFactory) -> None:
    server = server_factory.start()
    page = open_page()
    page.goto(server.url + "/")
    page.locator('input[name="platforms"]').first.wait_for()
    for box in page.locator('input[name="platforms"]').all():
        box.set_checked(False)

    page.get_by_role("button", name="Create clips").click()
    expect(page.locator("#source-error")).to_have_text("Choose a video file or drop one here.")
    expect(page.locator("#platforms-error")).to_have_text("Pick at least one platform.")

    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the form is {overflow} px wider than a 390 px phone screen"
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_label("Paste a link").check()
    page.get_by_label("Video link").fill("ftp://example.invalid/video.mp4")
    page.get_by_role("button", name="Create clips").click()
    expect(page.locator("#source-error")).to_have_text("The link must start with http:// or https://.")
    assert page.url == server.url + "/"


def test_upload_over_limit_shows_inline_error(
    open_page, server_factory: ServerFactory, media: MediaFactory
) -> None:
    server = server_factory.start(env={"VIRALSPLIT_MAX_UPLOAD_BYTES": "50000"})
    page = open_page()
    source = media.video(VideoSpec(width=640, height=360, duration_s=4.0, fps=12), name="big.mp4")
    assert source.stat().st_size > 50000

    page.goto(server.url + "/")
    page.locator('input[type="file"]').set_input_files(str(source))
    page.get_by_role("button", name="Create clips").click()

    error = page.locator("#source-error")
    expect(error).to_be_visible(timeout=15_000)
    expect(error).to_contain_text("larger than the limit")
    assert "/p/" not in page.url
    expect(page.get_by_role("button", name="Create clips")).to_be_enabled()


def test_non_video_upload_shows_failed_ingest(
    open_page, server_factory: ServerFactory, media: MediaFactory
) -> None:
    server = server_factory.start()
    page = open_page()
    create_project(page, server.url, ["tiktok"], file=media.random_bytes())

    cards = wait_for_jobs(page, lambda cards: cards[0]["state"] == "failed", timeout=30, message="ingest failed")
    assert cards[0]["kind"] == "ingest"
    failed = page.locator('article.job-card[data-state="failed"]')
    expect(failed.locator(".job-error")).to_contain_text("not a video")
    expect(failed.locator(".badge")).to_have_text("Failed")


def test_refused_url_shows_error(
    open_page, server_factory: ServerFactory, media: MediaFactory, slow_media_server
) -> None:
    # The test's own media server is not allowlisted, so the egress guard must refuse it.
    media_url, _ = slow_media_server(media.video(VideoSpec(duration_s=1.0), name="private.mp4"))
    server = server_factory.start()
    page = open_page()
    page.goto(server.url + "/")
    page.get_by_label("Paste a link").check()
    page.get_by_label("Video link").fill(media_url)
    page.get_by_role("button", name="Create clips").click()

    # The server rejects the link before it creates a project, so the error shows by the field.
    inline = page.locator("#source-error")
    expect(inline).to_be_visible(timeout=10_000)
    text = inline.text_content() or ""
    assert "127.0.0.1" in text, text
    assert "loopback address" in text, text
    assert "/p/" not in page.url


def test_upload_progress_and_cancel(
    open_page, server_factory: ServerFactory, media: MediaFactory
) -> None:
    server = server_factory.start()
    page = open_page()
    # Chromium's network emulation slows the upload to about 1 MB/s, so it is still
    # running when the test reads its progress and cancels it.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    source = media.video(VideoSpec(width=640, height=360, duration_s=20.0, fps=25), name="slow.mp4")
    assert source.stat().st_size > 3_000_000

    page.goto(server.url + "/")
    page.locator('input[type="file"]').set_input_files(str(source))
    page.get_by_role("button", name="Create clips").click()

    status = page.locator(".upload-status")
    expect(status).to_be_visible()
    page.wait_for_function(
        "() => { const bar = document.querySelector('.upload-status progress'); return bar && bar.value > 0.05; }",
        timeout=15_000,
    )
    expect(status.locator(".upload-meta")).to_contain_text("/s")
    expect(status.locator(".upload-meta")).to_contain_text("left")
    expect(status.locator(".percent")).not_to_have_text("0%")

    page.get_by_role("button", name="Cancel upload").click()
    expect(page.locator("#source-error")).to_contain_text("Upload cancelled")
    expect(status).to_have_count(0)
    expect(page.get_by_role("button", name="Create clips")).to_be_enabled()
    assert "/p/" not in page.url


def test_wrong_token_shows_message(open_page, server_factory: ServerFactory) -> None:
    server = server_factory.start()
    page = open_page()
    page.goto(server.url + "/p/0123456789abcdef#token=not-a-token")
    expect(page.get_by_role("heading", name="This project cannot be opened")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("This link is not valid")
    expect(page.get_by_role("link", name="Start a new project")).to_be_visible()


def test_form_reachable_by_keyboard(open_page, server_factory: ServerFactory) -> None:
    server = server_factory.start()
    page = open_page()
    page.goto(server.url + "/")
    page.locator('input[name="platforms"]').first.wait_for()

    focused: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate(
                "() => { const e = document.activeElement; return `${e.tagName}:${e.name || e.type || e.textContent}`; }"
            )
        )
    for expected in ("INPUT:source-mode", "INPUT:file", "INPUT:platforms", "INPUT:fill", "INPUT:part_length",
                     "INPUT:title", "BUTTON:submit"):
        assert expected in focused, f"{expected} never received focus; order was {focused}"

    # Space on a focused platform toggles it, as on any checkbox.
    box = page.locator('input[name="platforms"][value="x"]')
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
