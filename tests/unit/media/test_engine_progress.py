"""The ffmpeg -progress parser: pure, fed lines, no process."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from viralsplit.media.progress import ProgressParser


def block(**values: object) -> list[str]:
    lines = [f"{key}={value}" for key, value in values.items() if key != "progress"]
    return lines + [f"progress={values.get('progress', 'continue')}"]


def feed_all(parser: ProgressParser, lines: list[str]):
    results = [parser.feed(line) for line in lines]
    return [result for result in results if result is not None]


def test_block_yields_one_progress() -> None:
    parser = ProgressParser(10.0)
    results = feed_all(parser, block(frame=50, fps="25.0", out_time_us=5_000_000, speed="2.0x"))
    assert len(results) == 1
    progress = results[0]
    assert progress.stage == "render"
    assert progress.fraction == 0.5
    assert progress.frames == 50
    assert progress.fps == 25.0
    assert progress.speed == 2.0
    assert progress.eta_s == 2.5
    assert progress.out_time_s == 5.0


def test_out_time_ms_is_microseconds() -> None:
    parser = ProgressParser(10.0)
    [progress] = feed_all(parser, block(out_time_ms=2_500_000))
    assert progress.out_time_s == 2.5
    assert progress.fraction == 0.25


def test_out_time_text_fallback() -> None:
    parser = ProgressParser(100.0)
    [progress] = feed_all(parser, block(out_time="00:01:15.500000"))
    assert progress.out_time_s == 75.5


def test_na_values_ignored() -> None:
    parser = ProgressParser(10.0)
    [progress] = feed_all(parser, block(frame="N/A", fps="N/A", out_time_us="N/A", out_time="N/A", speed="N/A"))
    assert progress.fraction == 0.0
    assert progress.frames is None
    assert progress.fps is None
    assert progress.speed is None
    assert progress.eta_s is None
    assert progress.out_time_s is None


def test_negative_first_value_ignored() -> None:
    parser = ProgressParser(10.0)
    [first] = feed_all(parser, block(out_time_us=-9223372036854775807, out_time="-2562047788:00:54.775807"))
    assert first.fraction == 0.0
    assert first.out_time_s is None


def test_huge_first_value_ignored() -> None:
    parser = ProgressParser(10.0)
    [first, second] = feed_all(parser, block(out_time_us=9223372036854775807) + block(out_time_us=1_000_000))
    assert first.fraction == 0.0
    assert second.fraction == 0.1


def test_value_far_past_end_ignored() -> None:
    parser = ProgressParser(10.0)
    [progress] = feed_all(parser, block(out_time_us=3_600_000_000))
    assert progress.fraction == 0.0


def test_fraction_never_decreases() -> None:
    parser = ProgressParser(10.0)
    results = feed_all(parser, block(out_time_us=6_000_000) + block(out_time_us=4_000_000))
    assert [r.fraction for r in results] == [0.6, 0.6]
    assert results[1].out_time_s == 6.0


def test_fraction_capped_at_one() -> None:
    parser = ProgressParser(10.0)
    [progress] = feed_all(parser, block(out_time_us=10_400_000, speed="1x"))
    assert progress.fraction == 1.0
    assert progress.eta_s == 0.0


def test_end_sets_fraction_one() -> None:
    parser = ProgressParser(10.0)
    results = feed_all(parser, block(out_time_us=9_960_000) + block(out_time_us=9_960_000, progress="end"))
    assert results[-1].fraction == 1.0
    assert results[-1].eta_s == 0.0
    assert parser.finished


def test_unknown_duration_reports_none() -> None:
    parser = ProgressParser(None)
    results = feed_all(parser, block(frame=10, out_time_us=1_000_000, speed="3x") + block(progress="end"))
    for progress in results:
        assert progress.fraction is None
        assert progress.eta_s is None
    assert results[0].out_time_s == 1.0
    assert results[0].speed == 3.0


def test_zero_duration_is_unknown() -> None:
    parser = ProgressParser(0.0)
    [progress] = feed_all(parser, block(out_time_us=1))
    assert progress.fraction is None


def test_lines_without_equals_ignored() -> None:
    parser = ProgressParser(10.0)
    assert parser.feed("") is None
    assert parser.feed("garbage") is None
    assert parser.feed("frame=1") is None


times = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.just("N/A"),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@given(st.lists(times, max_size=30), st.one_of(st.none(), st.floats(min_value=0.001, max_value=1e6)))
def test_fraction_monotonic_any_input(values: list[str], duration: float | None) -> None:
    parser = ProgressParser(duration)
    last = 0.0
    for value in values:
        [progress] = feed_all(parser, block(out_time_us=value, speed=value))
        if duration is None:
            assert progress.fraction is None
            continue
        assert progress.fraction is not None
        assert last <= progress.fraction <= 1.0
        last = progress.fraction
