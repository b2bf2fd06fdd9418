"""Steps a user takes in the page, and reads of what the page shows, shared by the e2e tests."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

# Seconds for steps that wait on real encodes of a few seconds of media on 2 cores.
RENDER_TIMEOUT_S = 90.0

JOBS_SCRIPT = """
() => [...document.querySelectorAll('article.job-card')].map((card) => {
  const bar = card.querySelector('progress');
  return {
    id: card.dataset.jobId,
    kind: card.dataset.kind,
    state: card.dataset.state,
    title: card.querySelector('h3').textContent,
    stage: card.querySelector('.stage').textContent,
    value: bar && bar.hasAttribute('value') ? bar.value : null,
    percent: card.querySelector('.percent').textContent,
    height: card.getBoundingClientRect().height,
  };
})
"""


def create_project(
    page: Page,
    base_url: str,
    platforms: list[str],
    *,
    file: Path | None = None,
    url: str | None = None,
    title: str | None = None,
    part_length_s: int | None = None,
) -> tuple[str, str]:
    """Fill in the new project form, submit it and wait for the project page.

    Returns the editor link and the viewer link of the new project.
    """
    page.goto(base_url + "/")
    page.locator('input[name="platforms"]').first.wait_for()
    for box in page.locator('input[name="platforms"]').all():
        box.set_checked(False)
    for name in platforms:
        page.locator(f'input[name="platforms"][value="{name}"]').check()
    if url is not None:
        page.get_by_label("Paste a link").check()
        page.get_by_label("Video link").fill(url)
    else:
        assert file is not None
        page.locator('input[type="file"]').set_input_files(str(file))
    if title:
        page.get_by_label("Title").fill(title)
    if part_length_s:
        page.get_by_label("Part length (seconds)").fill(str(part_length_s))
    page.get_by_role("button", name="Create clips").click()
    page.wait_for_url(re.compile(r"/p/[^/#]+#"), timeout=RENDER_TIMEOUT_S * 1000)
    editor_link = page.url
    parts = urlsplit(editor_link)
    fragment = parse_qs(parts.fragment)
    viewer_link = f"{parts.scheme}://{parts.netloc}{parts.path}#token={fragment['viewer'][0]}"
    return editor_link, viewer_link


def jobs(page: Page) -> list[dict]:
    """Return each job card as the page shows it, in page order."""
    return page.evaluate(JOBS_SCRIPT)


def render_cards(cards: list[dict]) -> list[dict]:
    return [card for card in cards if card["kind"] == "render"]


def render_jobs(page: Page) -> list[dict]:
    return render_cards(jobs(page))


def wait_for_jobs(page: Page, predicate, timeout: float = RENDER_TIMEOUT_S, message: str = "jobs") -> list[dict]:  # type: ignore[no-untyped-def]
    """Poll the job cards until `predicate(cards)` is true; return the cards."""
    deadline = time.monotonic() + timeout
    while True:
        cards = jobs(page)
        if cards and predicate(cards):
            return cards
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not reached within {timeout} s; the page shows {cards}")
        page.wait_for_timeout(100)


def all_render_jobs_ended(cards: list[dict], count: int) -> bool:
    renders = render_cards(cards)
    return len(renders) == count and all(
        card["state"] in ("succeeded", "failed", "cancelled") for card in cards
    )


def expect_live(page: Page, timeout_s: float = 15.0) -> None:
    expect(page.locator(".connection")).to_have_attribute("data-connection", "live", timeout=timeout_s * 1000)


def control_buttons(page: Page):  # type: ignore[no-untyped-def]
    """Every button that changes a job: cancel, cancel all, priority and retry."""
    return page.locator("button", has_text=re.compile(r"Cancel|Priority|Retry|▲|▼"))
