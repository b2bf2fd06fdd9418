"""The realtime protocol module without sockets: decoding, commands, frames, connection state."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viralsplit.media.progress import Progress
from viralsplit.realtime import protocol as p


def state(now: float = 0.0, **limits: object) -> p.ConnectionState:
    return p.ConnectionState("c_1", p.Limits(**limits), now)  # type: ignore[arg-type]


def packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def greeted(now: float = 0.0, **limits: object) -> p.ConnectionState:
    conn = state(now, **limits)
    conn.receive(packed({"t": "hello", "id": 1, "versions": [1], "name": "Ana"}), now)
    return conn


def test_hello_negotiates_highest_common_version() -> None:
    conn = state()
    command = conn.receive(packed({"t": "hello", "id": 1, "versions": [7, 1], "name": "Ana", "tokens": ["e_1"]}), 0.0)
    assert isinstance(command, p.Hello)
    assert conn.version == 1
    assert conn.name == "Ana"
    assert conn.tokens == ("e_1",)


def test_hello_without_common_version_closes() -> None:
    conn = state()
    with pytest.raises(p.ProtocolError) as caught:
        conn.receive(packed({"t": "hello", "id": 1, "versions": [99]}), 0.0)
    assert caught.value.code == p.UNSUPPORTED_VERSION
    assert conn.close_code == p.CLOSE_UNSUPPORTED_VERSION


def test_hello_name_is_cleaned() -> None:
    conn = state()
    conn.receive(packed({"t": "hello", "id": 1, "versions": [1], "name": " A\x00na\n" + "x" * 100}), 0.0)
    assert conn.name.startswith("Ana")
    assert len(conn.name) == p.MAX_NAME_CHARS


def test_second_hello_is_invalid_state() -> None:
    conn = greeted()
    with pytest.raises(p.ProtocolError) as caught:
        conn.receive(packed({"t": "hello", "id": 2, "versions": [1]}), 0.0)
    assert caught.value.code == p.INVALID_STATE
    assert caught.value.request_id == 2


def test_command_before_hello_is_rejected() -> None:
    conn = state()
    with pytest.raises(p.ProtocolError) as caught:
        conn.receive(packed({"t": "ping", "id": 5}), 0.0)
    assert caught.value.code == p.HELLO_REQUIRED
    assert conn.errors == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"t": "subscribe", "id": 2, "project": "p_1", "seq": 4, "epoch": "ab"}, p.Subscribe(2, "p_1", None, 4, "ab")),
        ({"t": "unsubscribe", "id": 3, "project": "p_1"}, p.Unsubscribe(3, "p_1")),
        ({"t": "ping", "id": 4}, p.Ping(4)),
    ],
)
def test_commands_parse(value: dict[str, object], expected: p.Command) -> None:
    assert greeted().receive(packed(value), 0.0) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"t": "subscribe", "id": 2},
        {"t": "subscribe", "id": 2, "project": 5},
        {"t": "subscribe", "id": 2, "project": "p", "seq": -1},
        {"t": "subscribe", "id": 2, "project": "p", "seq": True},
        {"t": "set_priority", "id": 2, "project": "p", "job": "j", "priority": 1000},
        {"t": "set_priority", "id": 2, "project": "p", "job": "j", "priority": "high"},
        {"t": "ping", "id": -1},
        {"t": "ping", "id": 2**40},
        {"t": 5, "id": 1},
        [1, 2, 3],
        "ping",
    ],
)
def test_malformed_commands_are_bad_frame(value: object) -> None:
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive(packed(value), 0.0)
    assert caught.value.code == p.BAD_FRAME


def test_unknown_type_keeps_request_id() -> None:
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive(packed({"t": "explode", "id": 9}), 0.0)
    assert caught.value.code == p.UNKNOWN_TYPE
    assert caught.value.request_id == 9


def test_text_message_is_bad_frame() -> None:
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive('{"t": "ping", "id": 1}', 0.0)
    assert caught.value.code == p.BAD_FRAME


def test_deep_nesting_is_bad_frame() -> None:
    data = b"\x81\xa1x" * 20 + b"\x00"
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive(data, 0.0)
    assert caught.value.code == p.BAD_FRAME


def test_very_deep_nesting_is_bad_frame() -> None:
    with pytest.raises(p.ProtocolError):
        greeted().receive(b"\x91" * 60000 + b"\x00", 0.0)


def test_huge_array_is_bad_frame() -> None:
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive(packed({"t": "hello", "id": 1, "versions": list(range(1000))}), 0.0)
    assert "max_array_len" in caught.value.message


def test_oversized_frame_is_bad_frame() -> None:
    with pytest.raises(p.ProtocolError):
        greeted().receive(b"\x00" * 70000, 0.0)


def test_malformed_frames_close_at_limit() -> None:
    conn = greeted(max_errors=3)
    for count in range(3):
        assert conn.close_code is None
        with pytest.raises(p.ProtocolError):
            conn.receive(b"\xc1", float(count))
    assert conn.close_code == p.CLOSE_PROTOCOL_ERRORS


def test_permission_errors_do_not_count_toward_close() -> None:
    conn = greeted(max_errors=2)
    conn.subscriptions["p_1"] = p.Subscription("p_1", 1, "viewer")
    for count in range(5):
        with pytest.raises(p.ProtocolError) as caught:
            conn.receive(packed({"t": "cancel", "id": count, "project": "p_1"}), float(count))
        assert caught.value.code == p.PERMISSION_DENIED
    assert conn.close_code is None


def test_acting_without_subscription_is_not_subscribed() -> None:
    with pytest.raises(p.ProtocolError) as caught:
        greeted().receive(packed({"t": "retry", "id": 3, "project": "p_1", "job": "j"}), 0.0)
    assert caught.value.code == p.NOT_SUBSCRIBED


def test_editor_may_act() -> None:
    conn = greeted()
    conn.subscriptions["p_1"] = p.Subscription("p_1", 1, "editor")
    command = conn.receive(packed({"t": "set_priority", "id": 3, "project": "p_1", "job": "j", "priority": -5}), 0.0)
    assert command == p.SetPriority(3, "p_1", "j", -5)


def test_rate_limit_allows_burst_then_refills() -> None:
    conn = greeted(commands_per_s=10.0, command_burst=5)
    results = []
    for _ in range(8):
        try:
            conn.receive(packed({"t": "ping", "id": 1}), 1.0)
            results.append("ok")
        except p.ProtocolError as exc:
            results.append(exc.code)
    # hello took one token at t=0, which refilled by t=1.
    assert results == ["ok"] * 5 + [p.TOO_MANY_REQUESTS] * 3
    assert conn.receive(packed({"t": "ping", "id": 2}), 1.2) == p.Ping(2)
    assert conn.close_code is None


def test_subscription_limit() -> None:
    conn = greeted(max_subscriptions=1)
    conn.subscriptions["p_1"] = p.Subscription("p_1", 1, "viewer")
    with pytest.raises(p.ProtocolError) as caught:
        conn.receive(packed({"t": "subscribe", "id": 3, "project": "p_2"}), 0.0)
    assert caught.value.code == p.TOO_MANY_REQUESTS
    assert conn.receive(packed({"t": "subscribe", "id": 4, "project": "p_1"}), 0.0) == p.Subscribe(4, "p_1")


def test_candidate_tokens_put_own_token_first() -> None:
    conn = state()
    conn.receive(packed({"t": "hello", "id": 1, "versions": [1], "tokens": ["a", "b"]}), 0.0)
    assert conn.candidate_tokens(p.Subscribe(2, "p", token="b")) == ["b", "a"]


def test_progress_frame_fits_24_bytes() -> None:
    progress = Progress(stage="render", fraction=0.4213, fps=249.97, speed=4.2, eta_s=11.2)
    frame = p.progress_frame(127, 2**32 - 1, 127, progress)
    assert frame == [1, 127, 2**32 - 1, 127, 3, 4213, 2500, 420, 12]
    assert len(p.encode(frame)) <= 24


def test_progress_frame_unknown_fraction() -> None:
    frame = p.progress_frame(3, 4211, 2, Progress(stage="render", fps=25.0))
    assert frame == [1, 3, 4211, 2, 3, None, 250, None, None]
    assert p.encode(frame).hex() == "990103cd10730203c0ccfac0c0"


def test_download_frame_round_trips() -> None:
    progress = Progress(stage="download", fraction=0.312, bytes_done=31457280, bytes_total=100663296,
                        bytes_per_s=5242880.4, eta_s=12.3)
    frame = p.progress_frame(3, 88, 1, progress)
    assert p.encode(frame).hex() == "9902035801cd0c30ce01e00000ce06000000ce005000000d"
    assert p.progress_fields(frame) == {
        "stage": "download", "fraction": 0.312, "bytes_done": 31457280,
        "bytes_total": 100663296, "bytes_per_s": 5242880, "eta_s": 13,
    }


def test_progress_clamps_odd_values() -> None:
    frame = p.progress_frame(1, 1, 1, Progress(stage="render", fraction=1.7, fps=float("nan"), speed=-1.0, eta_s=float("inf")))
    assert frame[5:] == [10000, None, 0, None]


def test_frame_type_and_seq() -> None:
    assert p.frame_type([0]) == "heartbeat"
    assert p.frame_type([1, 1, 7, 1, 3, None, None, None, None]) == "progress"
    assert p.frame_seq([1, 1, 7, 1, 3, None, None, None, None]) == 7
    assert p.frame_type({"t": "job", "seq": 3}) == "job"
    assert p.frame_seq({"t": "ack", "id": 1}) is None


def test_doc_examples_decode() -> None:
    # Two hex examples from docs/protocol.md, checked byte for byte.
    ping = bytes.fromhex("82a174a470696e67a26964" + "07")
    assert greeted().receive(ping, 0.0) == p.Ping(7)
    hello = bytes.fromhex(
        "85a174a568656c6c6fa26964 01a876657273696f6e739101a46e616d65a3416e61a6746f6b656e7391a5655f344a71".replace(" ", "")
    )
    assert state().receive(hello, 0.0) == p.Hello(1, (1,), "Ana", ("e_4Jq",))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data: bytes) -> None:
    conn = greeted(commands_per_s=1e9, command_burst=10**9)
    try:
        command = conn.receive(data, 0.0)
    except p.ProtocolError as exc:
        assert exc.code in {p.BAD_FRAME, p.UNKNOWN_TYPE, p.INVALID_STATE, p.NOT_SUBSCRIBED, p.UNSUPPORTED_VERSION}
    else:
        assert isinstance(command, (p.Hello, p.Subscribe, p.Unsubscribe, p.Ping))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["t", "id", "project", "job", "priority", "seq", "epoch", "versions", "tokens", "name"]),
                       json_values | st.sampled_from(["hello", "subscribe", "cancel", "set_priority", "retry", "ping", "unsubscribe"])))
def test_random_maps_parse_or_raise_protocol_error(value: dict[str, object]) -> None:
    conn = greeted(commands_per_s=1e9, command_burst=10**9)
    try:
        conn.receive(packed(value), 0.0)
    except p.ProtocolError as exc:
        assert exc.message


def doc_examples() -> list[tuple[str, bytes]]:
    """Every example in docs/protocol.md: a JSON value followed by its MessagePack in hex."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "protocol.md").read_text()
    examples = []
    for block in re.findall(r"```\n(.*?)```", text, re.S):
        literal: list[str] = []
        hex_lines: list[str] = []
        for line in block.splitlines() + [""]:
            stripped = re.sub(r"\s*\(.*\)\s*$", "", line).strip()
            if re.fullmatch(r"([0-9a-f]{2} )*[0-9a-f]{2}", stripped):
                hex_lines.append(stripped)
                continue
            if hex_lines:
                examples.append(("".join(literal), bytes.fromhex(" ".join(hex_lines))))
                literal, hex_lines = [], []
            if stripped.startswith(("{", "[")) or (literal and stripped):
                literal.append(stripped)
    return examples


def test_doc_hex_examples_match_their_values() -> None:
    import json

    examples = doc_examples()
    assert len(examples) >= 20
    for literal, data in examples:
        assert msgpack.unpackb(data) == json.loads(literal), literal
        assert p.encode(json.loads(literal)) == data, literal
