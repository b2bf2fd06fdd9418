"""`viralsplit submit` and `viralsplit watch` against a real server."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from conftest import QUICK_VIDEO, create_project


def run_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "viralsplit", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_submit_uploads_and_follows_to_the_end(server, media) -> None:
    video = media.video(QUICK_VIDEO)
    result = run_cli("submit", str(video), "--server", server.url, "--platform", "tiktok", "--platform", "x", "--name", "ci")
    assert result.returncode == 0, result.stderr
    assert "uploaded" in result.stderr
    assert "TikTok 1080x1920: succeeded" in result.stderr
    assert result.stderr.count("output ") >= 2


def test_submit_missing_file_exits_2(server, tmp_path) -> None:
    result = run_cli("submit", str(tmp_path / "missing.mp4"), "--server", server.url)
    assert result.returncode == 2
    assert "file not found" in result.stderr


def test_watch_ended_project_and_wrong_token(server, media) -> None:
    video = media.video(QUICK_VIDEO)
    submitted = run_cli("submit", str(video), "--server", server.url, "--platform", "x")
    assert submitted.returncode == 0, submitted.stderr
    project_id = submitted.stderr.split("project ", 1)[1].split(":", 1)[0]
    token = submitted.stderr.split("#token=", 1)[1].split()[0]

    watched = run_cli("watch", project_id, "--server", server.url, "--token", token, timeout=30)
    assert watched.returncode == 0, watched.stderr
    assert "output x part 1/1" in watched.stderr

    # The printed link is whole: server, path and token, so it downloads as printed.
    link = watched.stderr.split("output x part 1/1: ", 1)[1].split()[0]
    assert link.startswith(server.url + "/api/outputs/")
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.status == 200
        assert response.read(8)[4:8] == b"ftyp"

    # The share link printed by submit works as PROJECT on its own.
    share_link = submitted.stderr.split(f"project {project_id}: ", 1)[1].split()[0]
    by_link = run_cli("watch", share_link, "--server", server.url, timeout=30)
    assert by_link.returncode == 0, by_link.stderr
    assert "output x part 1/1" in by_link.stderr

    no_token = run_cli("watch", project_id, "--server", server.url, timeout=30)
    assert no_token.returncode == 2
    assert "missing token" in no_token.stderr

    other = create_project(server, ["x"])
    denied = run_cli("watch", project_id, "--server", server.url, "--token", other.viewer, timeout=30)
    assert denied.returncode == 1
    assert "unauthorized" in denied.stderr


def test_watch_fails_when_job_fails(server, media, tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 4096)
    result = run_cli("submit", str(broken), "--server", server.url, "--platform", "x")
    assert result.returncode == 1
    assert "failed" in result.stderr
