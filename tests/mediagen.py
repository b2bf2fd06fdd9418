"""Real media files generated with ffmpeg's lavfi sources, for tests and benchmarks.

`MediaFactory` writes each file once into its folder and returns the cached path on later
calls, so a session-scoped factory shares generated media between tests. Files are small
(short, low frame rate) because every test encode costs CPU time on small machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    width: int = 320
    height: int = 240
    duration_s: float = 2.0
    fps: int = 10
    audio: bool = True
    container: str = "mp4"  # file extension; decides the muxer
    vcodec: str = "libx264"
    acodec: str = "aac"
    # Display rotation written as the legacy "rotate" tag, which ffmpeg 5.1 turns into a
    # display matrix: 90 means the player rotates the stored frame 90 degrees counterclockwise.
    rotation: int = 0
    # Sample aspect ratio "num:den", stored in the bitstream and the container.
    sar: str | None = None
    pix_fmt: str = "yuv420p"
    # Extra output options, e.g. colour tags.
    extra: tuple[str, ...] = ()
    # Move the moov atom to the front.
    faststart: bool = True
    source: str = "testsrc2"


def run_ffmpeg(args: list[str]) -> None:
    """Run ffmpeg quietly and raise with its stderr when it fails."""
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {' '.join(command)}\n{result.stderr}")


def ffprobe_json(path: Path, *extra: str) -> dict:
    command = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", *extra, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


class MediaFactory:
    """Generate media files into `folder` once and return the cached path afterwards."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _cached(self, name: str, key: object, build) -> Path:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
        stem, _, suffix = name.rpartition(".")
        path = self.folder / f"{stem}-{digest}.{suffix}"
        if not path.exists():
            partial = path.with_name(f".partial-{path.name}")
            build(partial)
            os.replace(partial, path)
        return path

    def video(self, spec: VideoSpec = VideoSpec(), name: str | None = None) -> Path:
        filename = name or f"video.{spec.container}"
        return self._cached(filename, spec, lambda out: _build_video(spec, out))

    def audio_only(self, container: str = "m4a", duration_s: float = 2.0) -> Path:
        def build(out: Path) -> None:
            codec = "libmp3lame" if container == "mp3" else "aac"
            run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration_s}",
                        "-c:a", codec, "-f", _muxer(container), str(out)])
        return self._cached(f"audio.{container}", ("audio", container, duration_s), build)

    def audio_with_cover(self, container: str = "mp3", duration_s: float = 2.0) -> Path:
        """An audio file with an embedded picture stream flagged as attached_pic."""
        def build(out: Path) -> None:
            cover = out.with_name(out.name + ".png")
            run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=300x300:r=1:d=1", "-frames:v", "1", str(cover)])
            codec = "libmp3lame" if container == "mp3" else "aac"
            cover_codec = "png" if container == "m4a" else "mjpeg"
            run_ffmpeg([
                "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration_s}",
                "-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:a", codec, "-c:v", cover_codec,
                "-disposition:v:0", "attached_pic", "-f", _muxer(container), str(out),
            ])
            cover.unlink()
        return self._cached(f"cover.{container}", ("cover", container, duration_s), build)

    def video_with_cover_stream(self, duration_s: float = 2.0) -> Path:
        """An MP4 whose first video stream is a cover picture and whose second is the real video."""
        def build(out: Path) -> None:
            cover = out.with_name(out.name + ".png")
            run_ffmpeg(["-f", "lavfi", "-i", "color=c=red:s=200x200:r=1:d=1", "-frames:v", "1", str(cover)])
            real = self.video(VideoSpec(width=320, height=180, duration_s=duration_s))
            run_ffmpeg([
                "-i", str(cover), "-i", str(real), "-map", "0:v", "-map", "1:v", "-map", "1:a",
                "-c:v:0", "png", "-c:v:1", "copy", "-c:a", "copy",
                "-disposition:v:0", "attached_pic", "-disposition:v:1", "default", "-f", "mp4", str(out),
            ])
            cover.unlink()
        return self._cached("cover-stream.mp4", ("cover-stream", duration_s), build)

    def mkv_with_subtitles(self, duration_s: float = 2.0) -> Path:
        def build(out: Path) -> None:
            srt = out.with_name(out.name + ".srt")
            srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n")
            real = self.video(VideoSpec(width=320, height=240, duration_s=duration_s))
            run_ffmpeg(["-i", str(real), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt",
                        "-f", "matroska", str(out)])
            srt.unlink()
        return self._cached("subs.mkv", ("subs", duration_s), build)

    def luma_ramp(self, duration_s: float, fps: int = 5, width: int = 160, height: int = 90) -> Path:
        """A video whose frame N has flat luma 20 + (5 * N mod 200), with a sine tone.

        Each frame's brightness identifies it, so a test can tell which source frame a part
        starts on from the mean luma alone.
        """
        def build(out: Path) -> None:
            run_ffmpeg([
                "-f", "lavfi", "-i", f"color=c=black:s={width}x{height}:r={fps}:d={duration_s}",
                "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={duration_s}",
                "-vf", "format=yuv420p,geq=lum='20+mod(N*5,200)':cb=128:cr=128",
                "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", str(fps * 4),
                "-c:a", "aac", "-ac", "2", "-movflags", "+faststart", "-f", "mp4", str(out),
            ])
        return self._cached("ramp.mp4", ("ramp", duration_s, fps, width, height), build)

    def raw_h264(self, duration_s: float = 2.0, fps: int = 10) -> Path:
        """An Annex B H.264 elementary stream: no container, so no duration is known."""
        def build(out: Path) -> None:
            run_ffmpeg(["-f", "lavfi", "-i", f"testsrc2=s=320x240:r={fps}:d={duration_s}",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "h264", str(out)])
        return self._cached("raw.h264", ("raw", duration_s, fps), build)

    def hdr_pq(self, duration_s: float = 1.0) -> Path:
        """A 10-bit H.264 file tagged BT.2020 primaries with the PQ (SMPTE ST 2084) transfer."""
        spec = VideoSpec(
            width=320, height=180, duration_s=duration_s, pix_fmt="yuv420p10le",
            extra=("-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"),
        )
        return self.video(spec, name="hdr.mp4")

    def random_bytes(self, size: int = 64 * 1024, seed: int = 1) -> Path:
        def build(out: Path) -> None:
            out.write_bytes(random.Random(seed).randbytes(size))
        return self._cached("random.mp4", ("random", size, seed), build)

    def empty(self) -> Path:
        return self._cached("empty.mp4", ("empty",), lambda out: out.write_bytes(b""))

    def truncated(self, faststart: bool) -> Path:
        """An MP4 cut to 40% of its size; without faststart the moov index is lost with the tail."""
        def build(out: Path) -> None:
            whole = self.video(VideoSpec(duration_s=4.0, faststart=faststart))
            data = whole.read_bytes()
            out.write_bytes(data[: int(len(data) * 0.4)])
        return self._cached("truncated.mp4", ("truncated", faststart), build)

    def copy_as(self, source: Path, name: str) -> Path:
        """Copy `source` to a file called exactly `name` (quotes, spaces and all) in a subfolder."""
        folder = self.folder / "named"
        folder.mkdir(exist_ok=True)
        target = folder / name
        if not target.exists():
            shutil.copyfile(source, target)
        return target


def _muxer(container: str) -> str:
    return {"mp4": "mp4", "m4a": "ipod", "mov": "mov", "mkv": "matroska", "webm": "webm", "mp3": "mp3"}[container]


def _build_video(spec: VideoSpec, out: Path) -> None:
    inputs = ["-f", "lavfi", "-i", f"{spec.source}=s={spec.width}x{spec.height}:r={spec.fps}:d={spec.duration_s}"]
    maps = ["-map", "0:v"]
    if spec.audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={spec.duration_s}"]
        maps += ["-map", "1:a"]
    video_filters = [f"format={spec.pix_fmt}"]
    if spec.sar:
        video_filters.append(f"setsar={spec.sar.replace(':', '/')}")
    video = ["-vf", ",".join(video_filters), "-c:v", spec.vcodec]
    if spec.vcodec == "libx264":
        video += ["-preset", "ultrafast", "-g", str(spec.fps)]
    elif spec.vcodec == "libvpx-vp9":
        video += ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"]
    audio = ["-c:a", spec.acodec, "-ac", "2"] if spec.audio else []
    container = ["-f", _muxer(spec.container)]
    if spec.container in ("mp4", "mov") and spec.faststart:
        container += ["-movflags", "+faststart"]
    if spec.rotation:
        # ffmpeg 5.1 ignores the "rotate" tag when encoding, so it is added by a remux.
        plain = out.with_name(out.name + ".plain." + spec.container)
        run_ffmpeg([*inputs, *maps, *video, *audio, *spec.extra, *container, str(plain)])
        run_ffmpeg(["-i", str(plain), "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={spec.rotation}",
                    *container, str(out)])
        plain.unlink()
        return
    run_ffmpeg([*inputs, *maps, *video, *audio, *spec.extra, *container, str(out)])
