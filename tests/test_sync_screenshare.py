"""Screen sharing and voice calls: the pure rules (cobrowse/sync/screenshare.py), then the hub
relaying requests, answers and WebRTC signalling over real websockets."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from cobrowse.config import ConfigError, load_config
from cobrowse.sync import protocol as p
from cobrowse.sync.screenshare import (
    MAX_MLINE,
    REQUEST_TIMEOUT,
    SIGNAL_BURST,
    ScreenShares,
    ScreenShareSettings,
    chat_text,
    settings_from_config,
    signal_problem,
    turn_credentials,
)
from cobrowse.sync.session import Audience, CobrowseSession, TimelineEntry
from test_sync_hub import T0, Env, env, make_env, tick  # noqa: F401 (env, make_env: fixtures)

A = p.Viewer(name="Anna", role="agent")
S = p.Viewer(name="Sam", role="supervisor")
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0",
             "sdpMLineIndex": 0}


# ----- the pure rules ---------------------------------------------------------------------------


def session_with_agents() -> CobrowseSession:
    session = CobrowseSession("S", "shop.test", "V", "Ada", T0)
    session.tab_connected("T", "https://shop.test/", "Shop", T0)
    session.tab_connected("T2", "https://shop.test/help", "Help", T0)
    session.agent_joined("a1", 1, A, None, T0)
    session.agent_joined("s1", 2, S, None, T0)
    session.take_records()
    return session


def of(out, kind, audience=None, key=None) -> list:
    return [o.message for o in out if isinstance(o.message, kind) and (audience is None or o.audience is audience)
            and (key is None or o.key == key)]


def errors(out, key: str) -> list[str]:
    return [o.message.code for o in out if isinstance(o.message, p.Error) and o.key == key]


def kinds(session: CobrowseSession) -> list[str]:
    return [r.kind for r in session.take_records()]


def request(screens, session, key="a1", user=1, name="Anna", video=True, audio=False, now=T0):
    return screens.agent_frame(session, key, user, name, p.ScreenRequest(session="S", video=video, audio=audio), now)


def answer(screens, session, state, tab="T", conn="c1", media="", reason="", now=T0):
    return screens.visitor_frame(session, tab, conn, p.ScreenAnswer(state=state, media=media, reason=reason), now)


def signal(kind, **fields) -> p.Signal:
    if "candidate" in fields and isinstance(fields["candidate"], dict):
        fields["candidate"] = p.IceCandidate(**fields["candidate"])
    return p.Signal(kind=kind, **fields)


def live_screen(screens=None, session=None):
    screens = screens or ScreenShares()
    session = session or session_with_agents()
    request(screens, session)
    answer(screens, session, "accepted")
    answer(screens, session, "started", media="screen")
    session.take_records()
    return screens, session


def test_a_request_reaches_every_visitor_tab_and_every_agent_with_the_ice_servers():
    screens = ScreenShares(ScreenShareSettings(ice_servers=(p.IceServer(urls=["stun:stun.test:3478"]),)))
    session = session_with_agents()
    out = request(screens, session)
    [ice] = of(out, p.IceConfig, Audience.VISITOR)
    assert ice.servers[0].urls == ["stun:stun.test:3478"] and ice.policy == "all"
    [to_visitor] = of(out, p.ScreenRequest, Audience.VISITOR)
    assert (to_visitor.by, to_visitor.video, to_visitor.audio, to_visitor.timeout) == ("Anna", True, False,
                                                                                        REQUEST_TIMEOUT)
    assert to_visitor.agent >= 1  # a peer number, not the user id or the connection key
    assert of(out, p.ScreenRequest, Audience.AGENTS) == [to_visitor]
    [record] = session.take_records()
    assert (record.kind, record.actor, record.detail) == ("screen_share_requested", 1,
                                                          {"agent": "Anna", "audio": False})


def test_one_request_at_a_time_and_not_while_sharing():
    screens, session = ScreenShares(), session_with_agents()
    request(screens, session)
    assert errors(request(screens, session, "s1", 2, "Sam"), "s1") == ["screen_busy"]
    answer(screens, session, "accepted")
    answer(screens, session, "started", media="screen")
    assert errors(request(screens, session, "s1", 2, "Sam"), "s1") == ["screen_busy"]
    # A call on the same connection is fine, and goes to the sharing tab only.
    out = request(screens, session, "s1", 2, "Sam", video=False, audio=True)
    assert of(out, p.ScreenRequest, Audience.VISITOR_TAB, "T") and not of(out, p.ScreenRequest, Audience.VISITOR)


def test_requests_are_rate_limited_and_can_be_turned_off():
    screens, session = ScreenShares(), session_with_agents()
    for _ in range(3):
        request(screens, session)
        screens.agent_frame(session, "a1", 1, "Anna", p.ScreenStop(session="S"), T0)
    assert errors(request(screens, session), "a1") == ["rate_limited"]
    off = ScreenShares(ScreenShareSettings(enabled=False))
    assert errors(request(off, session_with_agents()), "a1") == ["disabled"]
    assert errors(request(screens, session_with_agents(), video=False, audio=False), "a1") == ["bad_frame"]


def test_nothing_starts_without_an_agents_request_and_the_visitors_accept():
    screens, session = ScreenShares(), session_with_agents()
    out = answer(screens, session, "started", media="screen")
    assert [m.code for m in of(out, p.Error, Audience.VISITOR_TAB, "T")] == ["not_requested"]
    assert not of(out, p.ScreenAnswer)
    request(screens, session)
    out = answer(screens, session, "started", media="screen")  # asked, but not accepted yet
    assert [m.code for m in of(out, p.Error)] == ["not_requested"]
    assert screens.state(session).media["screen"].state == "idle"
    # An accept with nothing asked is ignored.
    screens2, session2 = ScreenShares(), session_with_agents()
    assert answer(screens2, session2, "accepted") == []


def test_accept_then_start_records_the_share_and_tells_every_agent():
    screens, session = ScreenShares(), session_with_agents()
    request(screens, session)
    session.take_records()
    out = answer(screens, session, "accepted", tab="T2")
    assert of(out, p.ScreenAnswer, Audience.AGENTS) == [p.ScreenAnswer(state="accepted", session="S")]
    assert of(out, p.ScreenAnswer, Audience.VISITOR)  # the other tabs close their prompt
    assert answer(screens, session, "accepted", tab="T") == []  # one tab answers
    out = answer(screens, session, "started", tab="T2", media="screen")
    assert of(out, p.ScreenAnswer, Audience.AGENTS) == [p.ScreenAnswer(state="started", media="screen", session="S")]
    [record] = session.take_records()
    assert record.kind == "screen_share_started"
    assert record.detail == {"tab": "T2", "agent": "Anna", "agents": ["Anna", "Sam"]}


def test_declined_and_failed_answers_are_recorded_and_relayed():
    screens, session = ScreenShares(), session_with_agents()
    request(screens, session)
    out = answer(screens, session, "declined")
    assert of(out, p.ScreenAnswer, Audience.AGENTS)[0].state == "declined"
    assert kinds(session) == ["screen_share_requested", "screen_share_declined"]
    # Unsupported: answered at once, without a click.
    request(screens, session)
    out = answer(screens, session, "failed", reason="unsupported")
    assert of(out, p.ScreenAnswer, Audience.AGENTS) == [
        p.ScreenAnswer(state="failed", media="screen", reason="unsupported", session="S")]
    records = session.take_records()
    assert [(r.kind, r.detail.get("reason")) for r in records][-1] == ("screen_share_failed", "unsupported")
    # Denied after accepting: the picker was refused.
    request(screens, session)
    answer(screens, session, "accepted")
    out = answer(screens, session, "failed", media="screen", reason="denied")
    assert of(out, p.ScreenAnswer, Audience.AGENTS)[0].reason == "denied"
    assert screens.state(session).tab is None
    # Unknown reasons become "error".
    request(screens, session, "s1", 2, "Sam")
    answer(screens, session, "accepted")
    out = answer(screens, session, "failed", media="screen", reason="<script>")
    assert of(out, p.ScreenAnswer, Audience.AGENTS)[0].reason == "error"


def test_either_side_stops():
    screens, session = live_screen()
    out = answer(screens, session, "stopped", media="screen")
    assert of(out, p.ScreenAnswer, Audience.AGENTS) == [p.ScreenAnswer(state="stopped", media="screen", session="S")]
    [record] = session.take_records()
    assert (record.kind, record.detail) == ("screen_share_stopped", {"by": "visitor", "reason": "visitor"})

    screens, session = live_screen()
    out = screens.agent_frame(session, "s1", 2, "Sam", p.ScreenStop(session="S", media="screen"), T0)
    stop = p.ScreenStop(session="S", media="screen", by="Sam", reason="agent")
    assert of(out, p.ScreenStop, Audience.VISITOR_TAB, "T") == [stop]
    assert of(out, p.ScreenStop, Audience.AGENTS) == [stop]
    [record] = session.take_records()
    assert (record.kind, record.actor, record.detail["by"]) == ("screen_share_stopped", 2, "agent")
    assert screens.state(session).tab is None


def test_an_agent_can_withdraw_its_request_and_it_times_out():
    screens, session = ScreenShares(), session_with_agents()
    request(screens, session)
    out = screens.agent_frame(session, "a1", 1, "Anna", p.ScreenStop(session="S"), T0 + 1)
    assert of(out, p.ScreenStop, Audience.VISITOR)[0].reason == "withdrawn"
    assert answer(screens, session, "accepted") == []  # too late: nothing is pending
    request(screens, session, "s1", 2, "Sam")
    session.take_records()
    assert screens.tick(session, T0 + REQUEST_TIMEOUT - 1) == []
    out = screens.tick(session, T0 + REQUEST_TIMEOUT + 1)
    assert of(out, p.ScreenStop, Audience.VISITOR)[0].reason == "timeout"
    assert of(out, p.ScreenStop, Audience.AGENTS)[0].reason == "timeout"
    assert [(r.kind, r.detail["reason"]) for r in session.take_records()] == [("screen_share_declined", "timeout")]


def test_signals_go_only_between_the_sharing_tab_and_agents_in_the_session():
    screens, session = live_screen()
    out = screens.agent_frame(session, "a1", 1, "Anna", signal("offer", sdp=OFFER, session="S"), T0)
    [offer] = of(out, p.Signal, Audience.VISITOR_TAB, "T")
    assert offer.agent >= 1 and offer.sdp == OFFER
    anna = offer.agent
    out = screens.agent_frame(session, "s1", 2, "Sam", signal("offer", sdp=OFFER, session="S"), T0)
    sam = of(out, p.Signal, Audience.VISITOR_TAB, "T")[0].agent
    assert sam != anna
    # The visitor answers each agent connection by its number.
    out = screens.visitor_frame(session, "T", "c1", signal("answer", sdp=OFFER, agent=sam), T0)
    assert [(o.audience, o.key) for o in out] == [(Audience.AGENT, "s1")]
    out = screens.visitor_frame(session, "T", "c1", signal("candidate", candidate=CANDIDATE, agent=anna), T0)
    assert of(out, p.Signal, Audience.AGENT, "a1")[0].candidate == p.IceCandidate(**CANDIDATE)
    # Another tab, or a number nobody has, reaches no one.
    assert screens.visitor_frame(session, "T2", "c2", signal("answer", sdp=OFFER, agent=anna), T0) == []
    assert screens.visitor_frame(session, "T", "c1", signal("answer", sdp=OFFER, agent=99), T0) == []
    # The visitor never offers; agents never answer.
    out = screens.visitor_frame(session, "T", "c1", signal("offer", sdp=OFFER, agent=anna), T0)
    assert [m.code for m in of(out, p.Error)] == ["bad_signal"]
    assert errors(screens.agent_frame(session, "a1", 1, "Anna", signal("answer", sdp=OFFER, session="S"), T0),
                  "a1") == ["bad_signal"]


def test_an_agent_who_leaves_gets_nothing_more_and_the_visitor_closes_its_connection():
    screens, session = live_screen()
    out = screens.agent_frame(session, "s1", 2, "Sam", signal("offer", sdp=OFFER, session="S"), T0)
    sam = of(out, p.Signal)[0].agent
    session.agent_left("s1", T0)
    out = screens.agent_left(session, "s1", T0)
    assert of(out, p.Signal, Audience.VISITOR_TAB, "T") == [p.Signal(kind="bye", session="S", agent=sam)]
    assert screens.state(session).media["screen"].state == "live"  # Anna still sees it
    assert screens.visitor_frame(session, "T", "c1", signal("answer", sdp=OFFER, agent=sam), T0) == []
    # The last agent leaves: nobody to share with.
    session.agent_left("a1", T0)
    out = screens.agent_left(session, "a1", T0)
    assert of(out, p.ScreenStop, Audience.VISITOR_TAB, "T")[0].reason == "left"
    assert session.take_records()[-1].detail == {"by": "hub", "reason": "left"}


def test_signals_before_sharing_or_malformed_are_refused():
    screens, session = ScreenShares(), session_with_agents()
    assert errors(screens.agent_frame(session, "a1", 1, "Anna", signal("offer", sdp=OFFER, session="S"), T0),
                  "a1") == ["not_sharing"]
    assert screens.agent_frame(session, "a1", 1, "Anna", signal("candidate", candidate=CANDIDATE), T0) == []
    screens, session = live_screen()
    bad = [
        signal("offer", sdp="x" * (p.MAX_SDP + 1)),
        signal("offer", sdp="hello"),
        signal("offer", sdp=OFFER + "\x00"),
        signal("offer"),
        signal("offer", sdp=OFFER, candidate=CANDIDATE),
        signal("candidate"),
        signal("candidate", candidate={"candidate": "not a candidate"}),
        signal("candidate", candidate={"candidate": "candidate:" + "1" * p.MAX_CANDIDATE}),
        signal("candidate", candidate={**CANDIDATE, "sdpMLineIndex": MAX_MLINE + 1}),
        signal("candidate", candidate={**CANDIDATE, "sdpMid": "\n"}),
        signal("bye", sdp=OFFER),
    ]
    for frame in bad:
        assert signal_problem(frame) is not None, frame
        codes = errors(screens.agent_frame(session, "a1", 1, "Anna", frame, T0), "a1")
        assert codes in (["bad_signal"], ["too_large"]), (frame, codes)
    assert errors(screens.agent_frame(session, "a1", 1, "Anna", bad[0], T0), "a1") == ["too_large"]
    assert signal_problem(signal("candidate", candidate={"candidate": ""})) is None  # end of candidates
    assert signal_problem(signal("bye")) is None


def test_signal_floods_are_cut():
    screens, session = live_screen()
    frame = signal("candidate", candidate=CANDIDATE)
    results = [errors(screens.agent_frame(session, "a1", 1, "Anna", frame, T0), "a1")
               for _ in range(int(SIGNAL_BURST) + 5)]
    assert results[0] == [] and results[-1] == ["rate_limited"]
    offers = [errors(screens.agent_frame(session, "s1", 2, "Sam", signal("offer", sdp=OFFER), T0), "s1")
              for _ in range(20)]
    assert offers[0] == [] and offers[-1] == ["rate_limited"]


def test_a_call_on_the_same_connection_mute_and_hang_up():
    screens, session = live_screen()
    out = request(screens, session, video=False, audio=True)
    assert of(out, p.ScreenRequest, Audience.VISITOR_TAB, "T")[0].video is False
    answer(screens, session, "accepted")
    out = answer(screens, session, "started", media="call")
    assert of(out, p.ScreenAnswer, Audience.AGENTS)[0].media == "call"
    out = answer(screens, session, "muted", media="call")
    assert of(out, p.ScreenAnswer, Audience.AGENTS) == [p.ScreenAnswer(state="muted", media="call", session="S")]
    out = answer(screens, session, "stopped", media="call")  # hang up: the screen goes on
    assert screens.state(session).media["screen"].state == "live"
    assert kinds(session) == ["call_requested", "call_started", "call_ended"]
    # The agent who made the call leaves: the call ends, the screen goes on for Sam.
    request(screens, session, video=False, audio=True)
    answer(screens, session, "accepted")
    answer(screens, session, "started", media="call")
    session.agent_left("a1", T0)
    out = screens.agent_left(session, "a1", T0)
    assert of(out, p.ScreenStop, Audience.VISITOR_TAB, "T") == [
        p.ScreenStop(session="S", media="call", reason="left")]
    assert screens.state(session).media["screen"].state == "live"


def test_the_sharing_page_going_away_ends_the_share():
    screens, session = live_screen()
    assert screens.visitor_gone(session, "T", "another socket of T", T0) == []
    out = screens.visitor_gone(session, "T", "c1", T0)
    assert of(out, p.ScreenStop, Audience.AGENTS) == [p.ScreenStop(session="S", media="screen", reason="disconnected")]
    assert screens.state(session).tab is None


def test_late_agents_and_reloaded_pages_catch_up():
    screens, session = live_screen()
    session.agent_joined("b1", 3, p.Viewer(name="Ben", role="agent"), None, T0)
    out = screens.agent_joined(session, "b1", T0)
    assert of(out, p.IceConfig, Audience.AGENT, "b1")
    assert of(out, p.ScreenAnswer, Audience.AGENT, "b1") == [p.ScreenAnswer(state="started", media="screen",
                                                                            session="S")]
    screens, session = ScreenShares(), session_with_agents()
    request(screens, session, now=T0)
    restored = screens.visitor_restore(session, "T2", T0 + 10)
    assert [type(m) for m in restored] == [p.IceConfig, p.ScreenRequest]
    assert restored[1].timeout == REQUEST_TIMEOUT - 10


def test_an_agent_who_joins_after_the_visitor_agreed_gets_no_stream():
    screens, session = live_screen()
    session.agent_joined("b1", 3, p.Viewer(name="Ben", role="agent"), None, T0)
    screens.agent_joined(session, "b1", T0)
    out = screens.agent_frame(session, "b1", 3, "Ben", signal("offer", sdp=OFFER), T0 + 1)
    assert errors(out, "b1") == ["not_consented"]
    assert not of(out, p.Signal, Audience.VISITOR_TAB)
    # Those the visitor agreed to share with still can (a reloaded console offers again).
    out = screens.agent_frame(session, "a1", 1, "Anna", signal("offer", sdp=OFFER), T0 + 1)
    assert of(out, p.Signal, Audience.VISITOR_TAB)


def test_the_session_ending_records_what_it_ended():
    screens, session = live_screen()
    assert screens.session_ended(session, T0) == []
    assert [(r.kind, r.detail["reason"]) for r in session.take_records()] == [
        ("screen_share_stopped", "session_ended")]
    assert screens.agent_joined(session, "a1", T0) == []  # forgotten


def test_chat_text_says_what_happens_in_plain_words():
    def text(kind, **detail):
        return chat_text(TimelineEntry(T0, kind, 1, detail))

    asked = text("screen_share_requested", agent="Anna", audio=False)
    assert asked.startswith("Anna asked to see your screen.")
    assert "only the support agents in this session see it" in asked.lower() and "stop" in asked
    assert "voice call" in text("screen_share_requested", agent="Anna", audio=True)
    assert "microphone" in text("call_requested", agent="Anna")
    assert text("screen_share_started", agent="Anna", agents=["Anna", "Sam"]) == (
        "Screen sharing started. Anna, Sam can see what the visitor shares.")
    assert text("screen_share_stopped", by="visitor", reason="visitor") == "Screen sharing stopped by the visitor."
    assert text("screen_share_stopped", by="agent", reason="agent", agent="Sam") == "Screen sharing stopped by Sam."
    assert text("screen_share_stopped", by="hub", reason="left") == (
        "Screen sharing stopped because no agent is left in the session.")
    assert text("call_ended", by="hub", reason="left", agent="Anna") == "The voice call ended because Anna left."
    assert "could not start: this browser cannot do it" in text("screen_share_failed", reason="unsupported")
    assert "permission to share was not given" in text("screen_share_failed", reason="denied")
    assert "no network connection" in text("call_failed", reason="no_path")
    assert text("screen_share_declined", reason="timeout", agent="Anna").startswith("Anna's request got no answer")
    assert text("page", url="x") is None


# ----- ICE settings -----------------------------------------------------------------------------


def test_ice_config_from_the_config_file_with_time_limited_turn_logins(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[screenshare]\nturn_secret = "s3cret"\nice_transport_policy = "relay"\n'
                    '[[screenshare.ice_servers]]\nurls = ["stun:stun.test:3478"]\n'
                    '[[screenshare.ice_servers]]\nurls = "turn:turn.test:3478?transport=udp"\n'
                    '[[screenshare.ice_servers]]\nurls = ["turns:turn.test:5349"]\nusername = "u"\ncredential = "c"\n')
    config = load_config(path, env={}, allow_no_sites=True)
    assert "s3cret" not in repr(config)
    settings = settings_from_config(config.screenshare)
    ice = settings.ice_config("SESSION", 1000.0)
    assert ice.policy == "relay"
    stun, turn, fixed = ice.servers
    assert (stun.username, stun.credential) == ("", "")
    assert (turn.username, turn.credential) == turn_credentials("s3cret", "SESSION", 1000.0 + settings.turn_ttl)
    assert turn.username.startswith(str(int(1000 + settings.turn_ttl)) + ":")
    assert (fixed.username, fixed.credential) == ("u", "c")  # given: kept


def test_ice_servers_from_the_environment_and_bad_ones():
    env = {"COBROWSE_SCREENSHARE_ICE_SERVERS": json.dumps([{"urls": ["stun:127.0.0.1:3478"]}])}
    assert load_config(env=env, allow_no_sites=True).screenshare.ice_servers[0].urls == ("stun:127.0.0.1:3478",)
    assert load_config(env={}, allow_no_sites=True).screenshare.ice_servers == ()  # default: host candidates only
    for bad in ("not json", '[{"urls": "http://x"}]', '[{"urls": []}]', '[{"url": "stun:x"}]', '{"urls": "stun:x"}'):
        with pytest.raises(ConfigError):
            load_config(env={"COBROWSE_SCREENSHARE_ICE_SERVERS": bad}, allow_no_sites=True)
    with pytest.raises(ConfigError):
        load_config(env={"COBROWSE_SCREENSHARE_ICE_TRANSPORT_POLICY": "none"}, allow_no_sites=True)


def test_frames_decode_and_encode():
    frame = p.agent_decoder.decode(json.dumps({"t": "signal", "kind": "candidate", "session": "S",
                                               "candidate": {**CANDIDATE, "extra": "dropped"}}))
    assert frame.candidate == p.IceCandidate(**CANDIDATE)
    assert b"extra" not in p.encode(frame)
    with pytest.raises(msgspec.ValidationError):
        p.visitor_decoder.decode(b'{"t":"signal","kind":"shout"}')
    with pytest.raises(msgspec.ValidationError):
        p.visitor_decoder.decode(b'{"t":"screen_answer","state":"started","media":"everything"}')


# ----- the hub, over real websockets ------------------------------------------------------------


async def settled(condition) -> None:
    """Records and chat lines are written beside the live path: wait for them."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")



async def sharing_screen(env: Env):
    """A visitor sharing their page, Anna and Sam joined, Anna's screen request accepted and started."""
    visitor, shared = await env.sharing()
    session = shared["session"]
    anna, _ = await env.joined(session)
    sam, _ = await env.joined(session, "/supervisor")
    await anna.send({"t": "screen_request", "session": session})
    ice = await visitor.until("ice_config")
    assert ice["servers"] == []  # the default: host candidates (loopback, a LAN)
    asked = await visitor.until("screen_request")
    assert (asked["by"], asked["session"], asked.get("video", True)) == ("Anna", session, True)
    assert (await sam.until("screen_request"))["by"] == "Anna"
    await visitor.send({"t": "screen_answer", "state": "accepted"})
    await visitor.send({"t": "screen_answer", "state": "started", "media": "screen"})
    for agent in (anna, sam):
        assert (await agent.until("screen_answer", state="started"))["media"] == "screen"
    return visitor, anna, sam, session


async def test_hub_relays_offers_answers_and_candidates(env):
    visitor, anna, sam, session = await sharing_screen(env)
    await anna.send({"t": "signal", "kind": "offer", "session": session, "sdp": OFFER})
    offer = await visitor.until("signal")
    assert offer["kind"] == "offer" and offer["sdp"] == OFFER and offer["session"] == session
    await sam.send({"t": "signal", "kind": "offer", "session": session, "sdp": OFFER})
    sam_offer = await visitor.until("signal")
    assert sam_offer["agent"] != offer["agent"]
    await visitor.send({"t": "signal", "kind": "answer", "agent": offer["agent"], "sdp": OFFER})
    await visitor.send({"t": "signal", "kind": "candidate", "agent": offer["agent"], "candidate": CANDIDATE})
    got = await anna.until("signal")
    assert (got["kind"], got["sdp"], got["session"]) == ("answer", OFFER, session)
    assert (await anna.until("signal"))["candidate"] == CANDIDATE
    # Sam got none of Anna's: each agent connection only its own.
    assert not [f for f in await sam.sync() if f["t"] == "signal"]
    # Stop from the agent's side reaches the visitor and every agent.
    await sam.send({"t": "screen_stop", "session": session, "media": "screen"})
    stop = await visitor.until("screen_stop")
    assert (stop["by"], stop["reason"], stop["media"]) == ("Sam", "agent", "screen")
    assert (await anna.until("screen_stop"))["by"] == "Sam"
    # Nothing more is relayed.
    await visitor.send({"t": "signal", "kind": "candidate", "agent": offer["agent"], "candidate": CANDIDATE})
    assert not [f for f in await anna.sync() if f["t"] == "signal"]
    await settled(lambda: len([e for _, e in env.store.events if 'screen' in e.kind]) >= 3)
    assert [e.kind for _, e in env.store.events if "screen" in e.kind] == [
        "screen_share_requested", "screen_share_started", "screen_share_stopped"]


async def test_hub_refuses_screen_frames_of_sessions_not_joined_and_tabs_not_sharing(env):
    visitor, shared = await env.sharing()
    other = await env.agent()
    await other.send({"t": "screen_request", "session": shared["session"]})
    assert (await other.until("error"))["code"] == "not_found"
    await other.send({"t": "signal", "kind": "offer", "session": shared["session"], "sdp": OFFER})
    error = await other.until("error")
    assert (error["code"], error["re"]) == ("not_found", "signal")
    lone, _ = await env.visitor("V9", "T9")
    await lone.send({"t": "screen_answer", "state": "started", "media": "screen"})
    assert (await lone.until("error"))["code"] == "not_sharing"
    # Sharing the page is not sharing the screen: "started" without a request is refused.
    await visitor.send({"t": "screen_answer", "state": "started", "media": "screen"})
    assert (await visitor.until("error"))["code"] == "not_requested"
    await visitor.send({"t": "signal", "kind": "answer", "agent": 1, "sdp": "v=0 " + "x" * p.MAX_SDP})
    assert not [f for f in await visitor.sync() if f["t"] == "signal"]


async def test_hub_visitor_stop_page_close_and_agent_leaving(env):
    visitor, anna, sam, session = await sharing_screen(env)
    await anna.send({"t": "signal", "kind": "offer", "session": session, "sdp": OFFER})
    anna_peer = (await visitor.until("signal"))["agent"]
    await anna.send({"t": "leave", "session": session})
    bye = await visitor.until("signal")
    assert (bye["kind"], bye["agent"]) == ("bye", anna_peer)
    await visitor.send({"t": "screen_answer", "state": "stopped", "media": "screen"})
    stopped = await sam.until("screen_answer", state="stopped")
    assert stopped["media"] == "screen"
    # Again, and the sharing page goes away: the agents are told.
    await sam.send({"t": "screen_request", "session": session})
    await visitor.until("screen_request")
    await visitor.send({"t": "screen_answer", "state": "accepted"})
    await visitor.send({"t": "screen_answer", "state": "started", "media": "screen"})
    await sam.until("screen_answer", state="started")
    await visitor.close()
    stop = await sam.until("screen_stop")
    assert (stop["reason"], stop["media"]) == ("disconnected", "screen")


async def test_hub_request_times_out_on_the_tick(env):
    visitor, shared = await env.sharing()
    anna, _ = await env.joined(shared["session"])
    await anna.send({"t": "screen_request", "session": shared["session"], "video": False, "audio": True})
    assert (await visitor.until("screen_request"))["video"] is False
    env.clock.now += REQUEST_TIMEOUT + 1
    tick(env.hub)
    assert (await visitor.until("screen_stop"))["reason"] == "timeout"
    assert (await anna.until("screen_stop"))["reason"] == "timeout"


async def test_hub_posts_the_plain_words_to_a_linked_chat(env):
    posted = []

    class Chat:
        def conversation_of(self, session_id):
            return "C1"

        async def post_event(self, conversation, text):
            posted.append((conversation, text))

        async def may_join(self, agent, session_id):
            return None

        async def stop(self):
            pass

        def __getattr__(self, name):  # the rest of the chat feature: not used here
            return lambda *args, **kwargs: None

    env.hub.chat = Chat()
    try:
        visitor, anna, sam, session = await sharing_screen(env)
        await visitor.send({"t": "screen_answer", "state": "stopped", "media": "screen"})
        await anna.until("screen_answer", state="stopped")
        await settled(lambda: len(posted) >= 3)
    finally:
        env.hub.chat = None
    texts = [text for _, text in posted]
    assert texts[0].startswith("Anna asked to see your screen.")
    assert texts[1].startswith("Screen sharing started.")
    assert texts[2] == "Screen sharing stopped by the visitor."
