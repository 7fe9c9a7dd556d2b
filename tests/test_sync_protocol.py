"""Protocol v1: every frame has one typed definition, checked on decode."""

from __future__ import annotations

import msgspec
import pytest

from cobrowse.sync import protocol as p


def decode_visitor(obj):
    return p.visitor_decoder.decode(msgspec.json.encode(obj))


def decode_agent(obj):
    return p.agent_decoder.decode(msgspec.json.encode(obj))


# ----- visitor -> hub --------------------------------------------------------------


def test_visitor_hello_with_defaults():
    hello = decode_visitor({"t": "hello", "v": 1, "visitor": "V", "tab": "T", "url": "https://shop.test/"})
    assert hello == p.VisitorHello(v=1, visitor="V", tab="T", url="https://shop.test/")
    assert hello.title == "" and hello.resume is None and hello.last_seq == -1


@pytest.mark.parametrize("obj, kind", [
    ({"t": "share"}, p.Share),
    ({"t": "share", "name": "Ada"}, p.Share),
    ({"t": "rr", "seq": 0, "ev": [{"type": 4, "timestamp": 1.5, "data": {"href": "x"}}]}, p.Events),
    ({"t": "nav", "url": "https://shop.test/cart"}, p.Navigated),
    ({"t": "stop"}, p.StopSharing),
    ({"t": "bye"}, p.TabClosing),
    ({"t": "ping", "n": 3}, p.Ping),
])
def test_every_visitor_message_decodes(obj, kind):
    assert type(decode_visitor(obj)) is kind


@pytest.mark.parametrize("obj, kind", [
    ({"t": "agent_hello", "v": 1}, p.AgentHello),
    ({"t": "watch"}, p.WatchQueue),
    ({"t": "join", "session": "S"}, p.Join),
    ({"t": "join", "code": "123456"}, p.Join),
    ({"t": "join", "session": "S", "since": {"T": 4}}, p.Join),
    ({"t": "leave", "session": "S"}, p.Leave),
    ({"t": "end", "session": "S"}, p.EndSession),
    ({"t": "ping"}, p.Ping),
])
def test_every_agent_message_decodes(obj, kind):
    assert type(decode_agent(obj)) is kind


@pytest.mark.parametrize("obj", [
    {"t": "nope"},  # unknown type
    {"t": "join", "session": "S"},  # an agent's frame on the visitor side
    {"t": "rr", "seq": "1", "ev": []},  # wrong field type
    {"t": "rr", "seq": 1},  # missing field
    {"t": "rr", "seq": 1, "ev": [{"type": 2}]},  # event without timestamp
    {"t": "hello", "v": 1, "visitor": "V", "tab": 5, "url": "u"},
    {"seq": 1, "ev": []},  # no type at all
    ["t", "rr"],  # not an object
])
def test_bad_visitor_frames_are_refused(obj):
    with pytest.raises(msgspec.ValidationError):
        decode_visitor(obj)


def test_agent_side_refuses_visitor_frames():
    with pytest.raises(msgspec.ValidationError):
        decode_agent({"t": "rr", "seq": 0, "ev": []})
    with pytest.raises(msgspec.ValidationError):
        decode_agent({"t": "join", "since": {"T": "x"}})


def test_not_json_is_a_decode_error():
    with pytest.raises(msgspec.DecodeError):
        p.visitor_decoder.decode(b"{nope")


def test_unknown_fields_are_ignored_for_forward_compatibility():
    share = decode_visitor({"t": "share", "name": "Ada", "later": [1, 2]})
    assert share == p.Share(name="Ada")
    events = decode_visitor({"t": "rr", "seq": 0, "ev": [{"type": 3, "timestamp": 1, "delay": 5, "data": {}}]})
    assert events.ev[0].type == 3


def test_event_data_passes_through_byte_for_byte():
    raw = b'{"t":"rr","seq":7,"ev":[{"type":3,"timestamp":1.0,"data":{"source":2, "x" : [1,2.50,"\\u00e9"]}}]}'
    events = p.visitor_decoder.decode(raw)
    assert bytes(events.ev[0].data) == b'{"source":2, "x" : [1,2.50,"\\u00e9"]}'
    relayed = p.encode(p.TabEvents(session="S", tab="T", seq=7, ev=events.ev))
    assert b'"data":{"source":2, "x" : [1,2.50,"\\u00e9"]}' in relayed


def test_event_without_data_defaults_to_null():
    events = decode_visitor({"t": "rr", "seq": 0, "ev": [{"type": 3, "timestamp": 1}]})
    assert bytes(events.ev[0].data) == b"null"


# ----- hub -> clients ----------------------------------------------------------------


def test_frames_out_carry_their_type_and_omit_defaults():
    assert msgspec.json.decode(p.encode(p.Welcome(v=1))) == {"t": "welcome", "v": 1}
    assert msgspec.json.decode(p.encode(p.Error(code="bad_frame", message="m"))) == {
        "t": "error", "code": "bad_frame", "message": "m"}
    assert msgspec.json.decode(p.encode(p.Error(code="bad_frame", message="m", re="rr")))["re"] == "rr"
    assert msgspec.json.decode(p.encode(p.SnapshotPlease())) == {"t": "snapshot"}
    ended = msgspec.json.decode(p.encode(p.Ended(session="S", reason="visitor_stopped")))
    assert ended == {"t": "ended", "session": "S", "reason": "visitor_stopped"}


def test_tab_events_and_tab_state_encoding():
    ev = [p.RrwebEvent(type=2, timestamp=5.0, data=msgspec.Raw(b'{"node":1}'))]
    out = msgspec.json.decode(p.encode(p.TabEvents(session="S", tab="T", seq=3, ev=ev, reset=True)))
    assert out == {"t": "tab_rr", "session": "S", "tab": "T", "seq": 3, "reset": True,
                   "ev": [{"type": 2, "timestamp": 5.0, "data": {"node": 1}}]}
    assert "reset" not in msgspec.json.decode(p.encode(p.TabEvents(session="S", tab="T", seq=3, ev=ev)))
    closed = msgspec.json.decode(p.encode(p.TabUpdate(session="S", state=p.TabState(tab="T", url="u", open=False))))
    assert closed == {"t": "tab", "session": "S", "state": {"tab": "T", "url": "u", "open": False}}


def test_every_outgoing_message_has_a_distinct_tag():
    outgoing = [p.Welcome, p.Shared, p.Viewers, p.Ack, p.SnapshotPlease, p.Ended, p.Queue, p.Joined,
                p.TabEvents, p.TabUpdate, p.Pong, p.Error]
    tags = [cls.__struct_config__.tag for cls in outgoing]
    assert len(set(tags)) == len(tags)
    incoming = {cls.__struct_config__.tag for cls in p.VisitorMessage.__args__ + p.AgentMessage.__args__}
    # Only ping/pong style pairs may look alike; no outgoing tag is also an incoming one.
    assert not set(tags) & incoming


@pytest.mark.parametrize("raw, kind", [
    (b'{"t":"rr","seq":"x"}', "rr"),
    ('{"t":"join"}', "join"),
    (b'{"t":5}', None),
    (b'[1,2]', None),
    (b'not json', None),
    (b'{"t":"' + b"x" * 100 + b'"}', None),
])
def test_frame_type_names_the_frame_when_it_can(raw, kind):
    assert p.frame_type(raw) == kind


@pytest.mark.parametrize("raw, version", [
    (b'{"t":"hello","v":1,"visitor":"V","tab":"T","url":"u"}', 1),
    (b'{"t":"hello","v":2,"anything":"else"}', 2),  # a later version's hello, whatever its shape
    (b'{"v":"x","t":"hello"}', "x"),
    (b'{"t":"hello"}', None),
    (b'{"t":"share","v":2}', None),  # not a hello
    (b'[1]', None),
    (b'nope', None),
])
def test_hello_version_reads_v_before_the_rest_of_hello(raw, version):
    assert p.hello_version(raw, "hello") == version
