"""The co-browse wire protocol, version 1: one typed definition per message.

Every frame is a JSON object whose ``t`` field names its type. Frames are
decoded straight into these msgspec structs on arrival, so a frame that does
not match its definition is refused with an ``error`` frame before any
session logic sees it. rrweb events travel as ``msgspec.Raw``: the hub reads
only an event's ``type`` and never re-parses (or re-serialises) its data.

docs/protocol.md describes the conversation; keep the two in step.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec

VERSION = 1

# Limits the hub enforces (documented in docs/protocol.md).
MAX_VISITOR_FRAME = 16 * 1024 * 1024  # a full snapshot of a very large page
MAX_AGENT_FRAME = 64 * 1024
MAX_EVENTS_PER_BATCH = 5000
MAX_TEXT = 2048  # urls, titles, names


# gc=False: frames and events never hold reference cycles, so the garbage
# collector need not track them. A hub holds hundreds of thousands of buffered
# events; tracked, each full collection walked them all (150-200 ms pauses).
class Message(msgspec.Struct, tag_field="t", forbid_unknown_fields=False, omit_defaults=True, gc=False):
    """Base of every frame."""


class RrwebEvent(msgspec.Struct, forbid_unknown_fields=False, gc=False):
    """One rrweb event; only its type matters to the hub."""

    type: int
    timestamp: float
    data: msgspec.Raw = msgspec.Raw(b"null")


# rrweb EventType values the hub cares about.
RR_FULL_SNAPSHOT = 2
RR_META = 4


# ----- visitor -> hub ----------------------------------------------------------


class VisitorHello(Message, tag="hello"):
    """First frame of a visitor tab. ``resume`` continues a shared session across page loads."""

    v: int
    visitor: str  # random id the visitor's browser keeps for its whole visit
    tab: str  # random id of this browser tab (kept across its page loads)
    url: str
    title: str = ""
    resume: str | None = None  # resume token from a previous `shared`
    last_seq: int = -1  # highest event seq this tab has recorded (to resume a broken stream)
    name: str = ""  # the name the visitor gave when sharing, so a restarted hub knows it again


class Share(Message, tag="share"):
    """The visitor agreed to share this page (and the pages they go to) with support."""

    name: str = ""  # optional name the visitor gives


class Events(Message, tag="rr"):
    """A batch of rrweb events of this tab, numbered by the seq of its first event."""

    seq: int
    ev: list[RrwebEvent]


class Navigated(Message, tag="nav"):
    url: str
    title: str = ""


class StopSharing(Message, tag="stop"):
    """The visitor stops sharing: every agent's view ends at once."""


class TabClosing(Message, tag="bye"):
    """The tab is going away for good (pagehide without a navigation in this origin)."""


# ----- agent -> hub ------------------------------------------------------------


class AgentHello(Message, tag="agent_hello"):
    v: int


class WatchQueue(Message, tag="watch"):
    """Subscribe to the list of visitors waiting for help."""


class Join(Message, tag="join"):
    """Join a session from the queue, or by the code the visitor reads out."""

    session: str | None = None
    code: str | None = None
    since: dict[str, int] | None = None  # tab -> last seq seen, when rejoining after a drop


class Leave(Message, tag="leave"):
    session: str


class EndSession(Message, tag="end"):
    session: str


class Ping(Message, tag="ping"):
    n: int = 0


# ----- markers and shared control (both directions) ---------------------------
#
# Markers are anchored to elements, not screen coordinates: by the element's
# live rrweb node id on the current page, with a CSS selector and a text
# quote as fallbacks that survive a page load (a pinned marker is found again
# on the next page). Notes are plain text, never markup.

MAX_NOTE = 280
MAX_POINTS = 2000


class Anchor(msgspec.Struct, omit_defaults=True):
    node: int = -1  # rrweb mirror id of the element on the visitor's current page
    selector: str = ""  # CSS selector of the element (fallback across page loads)
    quote: str = ""  # text of the element, or the highlighted words (fallback and text ranges)
    start: int = -1  # text markers: offsets of the highlighted words in the element's text
    end: int = -1


class Marker(msgspec.Struct, omit_defaults=True):
    id: str
    kind: Literal["element", "text", "field", "draw"]
    anchor: Anchor
    note: str = ""  # plain text, at most MAX_NOTE characters
    pinned: bool = False  # kept across page loads (found again by selector/quote)
    scroll: bool = True  # scroll the visitor's page to it when it is off-screen
    points: list[tuple[float, float]] = []  # draw: polyline in the anchor's box, 0..1 each way
    by: str = ""  # set by the hub: who placed it
    agent: int = 0  # set by the hub, in agents' copies only: the placing agent's user id ("is it mine?")


class MarkerAdd(Message, tag="mark"):
    session: str
    tab: str
    marker: Marker


class MarkerRemove(Message, tag="unmark"):
    session: str
    tab: str
    id: str | None = None  # None: every marker of the tab


class Laser(Message, tag="laser"):
    """A transient pointer dot following the agent's cursor, relative to an element's box."""

    session: str
    tab: str
    anchor: Anchor | None = None  # None hides the dot
    x: float = 0.5
    y: float = 0.5
    by: str = ""  # set by the hub when relaying: whose pointer it is
    agent: int = 0  # set by the hub, in agents' copies only: whose pointer (user id)


class ControlRequest(Message, tag="control_request"):
    session: str
    allow_submit: bool = False  # ask to submit forms too


class ControlRelease(Message, tag="control_release"):
    session: str


class AgentInput(Message, tag="input"):
    """An agent's action on the visitor's page, applied there as real events (needs control)."""

    session: str
    tab: str
    action: Literal["click", "input", "change", "scroll", "key", "submit"]
    node: int = -1  # rrweb mirror id of the target element
    value: str | None = None  # input/change: the new value
    checked: bool | None = None  # change on checkboxes and radios
    x: float = 0.0  # scroll: page offsets
    y: float = 0.0
    key: str = ""  # key: the key name (Enter, Tab, Escape...)


class Command(Message, tag="command"):
    """Operator commands: `goto` navigates the visitor's tab, `open` opens a new one."""

    session: str
    tab: str
    kind: Literal["goto", "open"]
    url: str


# visitor -> hub


class ControlAnswer(Message, tag="control"):
    """The visitor grants or declines a control request, or takes control back (granted false)."""

    granted: bool
    allow_submit: bool = False


class VisitorUnmark(Message, tag="unmark"):
    """The visitor clears markers on their page."""

    id: str | None = None


class CommandResult(Message, tag="command_result"):
    kind: Literal["goto", "open"]
    url: str
    ok: bool
    reason: str = ""  # popup_blocked | refused | ...
    session: str = ""  # set by the hub when relaying to agents
    tab: str = ""  # set by the hub when relaying to agents


class InputRefused(Message, tag="input_refused"):
    """The visitor's page would not apply an agent's action (masked field, submit not allowed...)."""

    action: str
    reason: str
    session: str = ""  # set by the hub when relaying to agents
    tab: str = ""  # set by the hub when relaying to agents




# ----- hub -> clients ------------------------------------------------------------


class Welcome(Message, tag="welcome"):
    v: int
    session: str | None = None  # set when the visitor resumed a live session
    have_seq: int = -1  # highest seq of this tab the hub holds; resend what follows
    viewers: list["Viewer"] = []


class Shared(Message, tag="shared"):
    session: str
    code: str  # 6 digits to read to an agent on the phone
    code_expires: float  # unix time
    resume: str  # token to continue the session on the next page


class Viewer(msgspec.Struct, omit_defaults=True):
    name: str
    role: str  # agent | supervisor


class Viewers(Message, tag="viewers"):
    session: str
    viewers: list[Viewer]


class Ack(Message, tag="ack"):
    seq: int  # every event up to this seq is safe at the hub


class SnapshotPlease(Message, tag="snapshot"):
    """The hub wants a fresh full snapshot (its buffer grew too large, or it lost state)."""


class Ended(Message, tag="ended"):
    session: str
    # visitor_stopped | agent_ended | idle_timeout | chat_ended | server_shutdown; to one
    # agent only, transferred: the chat was handed on, the session goes on without them
    reason: str


class TabState(msgspec.Struct, omit_defaults=True):
    tab: str
    url: str
    title: str = ""
    open: bool = True


class QueueEntry(msgspec.Struct, omit_defaults=True):
    session: str
    site: str
    url: str
    title: str
    name: str
    since: float  # unix time the visitor asked for help
    viewers: int = 0
    away_since: float | None = None  # unix time the visitor's last open page went; None while one is open
    chat: bool = False  # shared inside a chat: joined from that chat, by those who may open it


class Queue(Message, tag="queue"):
    sessions: list[QueueEntry]


class Joined(Message, tag="joined"):
    session: str
    site: str
    tabs: list[TabState]
    viewers: list[Viewer]


class TabEvents(Message, tag="tab_rr"):
    """Events of one visitor tab, relayed to agents; ``reset`` starts a new page."""

    session: str
    tab: str
    seq: int
    ev: list[RrwebEvent]
    reset: bool = False


class TabUpdate(Message, tag="tab"):
    session: str
    state: TabState


class Pong(Message, tag="pong"):
    n: int = 0


class ControlRequested(Message, tag="control_requested"):
    """To the visitor: an agent asks for control; answer within ``timeout`` seconds."""

    session: str
    agent: Viewer
    allow_submit: bool
    timeout: float


class ControlState(Message, tag="control_state"):
    """To everyone in the session: who controls the visitor's page now (nobody: controller None)."""

    session: str
    controller: Viewer | None = None
    allow_submit: bool = False
    reason: str = ""  # granted | declined | revoked | released | timeout | left


class Error(Message, tag="error"):
    code: str  # bad_frame | too_large | rate_limited | unauthorized | not_found | bad_version | ...
    message: str
    re: str | None = None  # the type of the frame this answers, when known
    id: str | None = None  # the marker (or message) it is about, when there is one
    node: int | None = None  # the element it is about (rrweb node id), when there is one


# ----- chat (docs/chat.md) -------------------------------------------------------
#
# A conversation belongs to one visitor (their browser's visitor id) and lives
# in the database (chat/): the hub only carries its frames. Every message has a
# client-generated id (idempotency key) and gets a per-conversation seq when it
# is stored; a sender shows it as sent only on `chat_ack`. Text is plain text,
# never markup.

MAX_CHAT_TEXT = 4000
# A seq a client sends back: a JSON number JavaScript holds exactly (bigger ones are refused as bad frames).
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
MAX_FIELD = 500  # pre-chat field values


class ChatFile(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    size: int
    type: str  # content type


class ChatMessage(msgspec.Struct, omit_defaults=True):
    seq: int
    id: str  # the client id (idempotency key); the hub makes one for system messages
    at: float  # unix time stored
    sender: Literal["visitor", "agent", "system"]
    kind: Literal["text", "note", "file", "system", "command", "event"] = "text"
    # note: private to agents; system: welcome/notices (rich: sanitized node tree);
    # event: timeline lines (screen share started...); command: goto:/open:
    text: str = ""
    name: str = ""  # sender's display name (agents; the visitor's own name)
    agent: int = 0  # the agent's user id (sender agent)
    file: ChatFile | None = None
    rich: msgspec.Raw | None = None  # system messages: sanitized formatting as a node tree


class ChatParticipant(msgspec.Struct, omit_defaults=True):
    id: int  # user id
    name: str
    role: str  # agent | supervisor | admin


# visitor -> hub


class ChatStart(Message, tag="chat_start"):
    """Open a conversation (the pre-chat form). ``key`` makes a retried start idempotent."""

    key: str
    name: str = ""
    email: str = ""
    department: str = ""
    fields: dict[str, str] = {}
    url: str = ""
    title: str = ""
    tz: str = ""  # the visitor's IANA time zone, for the times in their transcript


class ChatResume(Message, tag="chat_resume"):
    """Continue this visitor's conversation in this tab (after a page load or reconnect)."""

    token: str
    after: Seq = 0  # highest seq this tab holds; the hub answers with `chat_history` after it


class LeaveMessage(Message, tag="leave_message"):
    """No agent is available: the visitor leaves a message (stored and emailed)."""

    key: str
    name: str = ""
    email: str = ""
    department: str = ""
    text: str = ""
    fields: dict[str, str] = {}


class ChatSurvey(Message, tag="chat_survey"):
    conversation: str = ""  # visitor: omitted (their own)
    rating: Annotated[int, msgspec.Meta(ge=0, le=5)] = 0  # 1..5
    comment: str = ""


# both directions (conversation omitted from the visitor, who has one)


class ChatSend(Message, tag="chat_send"):
    id: str  # client-generated idempotency key, 8..64 of [A-Za-z0-9_-]
    text: str
    conversation: str = ""
    private: bool = False  # agents: a private note


class ChatSync(Message, tag="chat_sync"):
    """Everything after ``after`` (on every reconnect, for every open view)."""

    after: Seq = 0
    conversation: str = ""


class ChatTyping(Message, tag="chat_typing"):
    on: bool
    conversation: str = ""
    text: str = ""  # never sent to anyone (typing previews would leak drafts)
    who: str = ""  # set by the hub: visitor | the agent's name


class ChatSeen(Message, tag="chat_seen"):
    """Messages of the other side received (delivered) and shown (read), up to a seq."""

    delivered: Seq = 0
    read: Seq = 0
    conversation: str = ""
    by: str = ""  # set by the hub: visitor | agent


class ChatEnd(Message, tag="chat_end"):
    conversation: str = ""


# agent -> hub


class ChatWatch(Message, tag="chat_watch"):
    """Receive offers of incoming chats; ``available`` false: on a break (no new offers)."""

    available: bool = True


class ChatAccept(Message, tag="chat_accept"):
    """Take an offered chat; the first agent wins, atomically."""

    conversation: str


class ChatOpen(Message, tag="chat_open"):
    """Open a conversation already taken (a reload, a supervisor looking in)."""

    conversation: str
    after: Seq = 0


class ChatClose(Message, tag="chat_close"):
    """Stop receiving a conversation's frames (its console tab closed); it goes on."""

    conversation: str


class ChatTransfer(Message, tag="chat_transfer"):
    conversation: str
    agent: int = 0  # to this agent, or
    department: str = ""  # back to the queue of this department


# hub -> clients


class ChatStarted(Message, tag="chat_started"):
    """To the visitor: their conversation, and the token that proves it is theirs."""

    conversation: str
    token: str
    key: str = ""


class ChatState(Message, tag="chat_state"):
    """Where a conversation stands (to the visitor's tabs and its agents)."""

    conversation: str
    status: Literal["waiting", "active", "ended"]
    agents: list[ChatParticipant] = []
    session: str = ""  # the co-browse session linked to it, while one runs
    department: str = ""
    visitor: str = ""  # the visitor's name (agents only)
    email: str = ""  # agents only
    fields: dict[str, str] = {}  # pre-chat answers (agents only)
    url: str = ""  # agents only: the page the visitor started on
    survey: bool = False  # to the visitor when it ended: ask for a rating
    # To the visitor while it waits: is anyone taking chats (of its department) now? When
    # not, the widget offers to leave a message instead.
    available: bool = True


class ChatAck(Message, tag="chat_ack"):
    """To the sender: the message ``id`` is stored as ``seq``."""

    id: str
    seq: int
    at: float
    conversation: str = ""


class ChatMessageFrame(Message, tag="chat_msg"):
    conversation: str
    m: ChatMessage


class ChatHistory(Message, tag="chat_history"):
    """Messages after a seq, oldest first; ``more`` when the client should ask again."""

    conversation: str
    messages: list[ChatMessage]
    more: bool = False


class ChatOffer(Message, tag="chat_offer"):
    """To available agents: a chat waiting for someone to accept it."""

    conversation: str
    name: str
    department: str
    url: str
    since: float
    preview: str = ""  # the first words of the visitor's first message


class ChatOffers(Message, tag="chat_offers"):
    """The whole list of waiting chats this agent may accept (sent on watch and on change)."""

    offers: list[ChatOffer]


class ChatTaken(Message, tag="chat_taken"):
    """To agents: a chat was accepted (by ``by``) and is no longer offered."""

    conversation: str
    by: ChatParticipant


class OfflineStored(Message, tag="offline_stored"):
    """To the visitor: their message was stored (and emailed)."""

    key: str


class OfflineLeft(Message, tag="offline_left"):
    """To agents watching chats: a visitor left a message; fetch the list again
    (it carries nothing of the message: the console's API decides who sees it)."""

    department: str = ""


# ----- screen share (docs/screenshare.md): WebRTC signalling through the hub ------------
#
# Scoped to a co-browse session: the agent escalates a session whose mirrored
# page is not enough. The visitor's frames carry no session (their socket has
# one); the hub fills it in when relaying to agents. Agents offer (they receive
# the screen), the visitor answers: one RTCPeerConnection per agent connection
# in the session, addressed by ``agent``, a small number the hub gives each
# agent connection of the session (never a user id or connection key).
# cobrowse/sync/screenshare.py holds the rules and the limits.

MAX_SDP = 32 * 1024
MAX_CANDIDATE = 1024


class IceServer(msgspec.Struct, omit_defaults=True):
    urls: list[str]
    username: str = ""
    credential: str = ""


class IceCandidate(msgspec.Struct, omit_defaults=True):
    """RTCIceCandidateInit; ``candidate`` "" is the end of candidates. Unknown fields are dropped."""

    candidate: str = ""
    sdpMid: str | None = None  # noqa: N815 (the browser's name)
    sdpMLineIndex: int | None = None  # noqa: N815
    usernameFragment: str | None = None  # noqa: N815


class ScreenRequest(Message, tag="screen_request"):
    """Agent -> hub -> visitor (and the session's agents): share your screen, or (video False) take a call."""

    session: str = ""
    audio: bool = False
    video: bool = True  # False: a voice call only
    by: str = ""  # set by the hub: the agent's name
    agent: int = 0  # set by the hub: the asking agent's peer number in the session
    timeout: float = 0.0  # set by the hub: seconds left to answer


class ScreenAnswer(Message, tag="screen_answer"):
    """Visitor -> hub -> agents (and the visitor's other tabs): what became of a request or a share."""

    state: Literal["accepted", "declined", "failed", "started", "stopped", "muted", "unmuted"]
    media: Literal["", "screen", "call"] = ""  # started/stopped/failed/muted: which ("" : the pending request)
    reason: str = ""  # failed: denied | unsupported | no_path | error; stopped/declined: set by the hub
    session: str = ""  # set by the hub when relaying


class ScreenStop(Message, tag="screen_stop"):
    """Agent -> hub -> visitor and agents: stop the screen share or the call, or withdraw a request."""

    session: str = ""
    media: Literal["", "screen", "call"] = ""  # "": both (and any pending request)
    by: str = ""  # set by the hub: the agent's name ("" : the hub itself)
    reason: str = ""  # set by the hub: agent | withdrawn | timeout | left | session_ended


class Signal(Message, tag="signal"):
    """WebRTC offer/answer/candidate between the visitor and one agent connection."""

    kind: Literal["offer", "answer", "candidate", "bye"]
    sdp: str = ""
    candidate: IceCandidate | None = None
    session: str = ""
    agent: int = 0  # visitor -> hub: to which agent; hub -> visitor: from which agent


class IceConfig(Message, tag="ice_config"):
    """Hub -> both: the ICE servers to use (``policy`` relay: TURN only)."""

    servers: list[IceServer]
    policy: Literal["all", "relay"] = "all"
    session: str = ""


VisitorMessage = Union[VisitorHello, Share, Events, Navigated, StopSharing, TabClosing, Ping,
                       ControlAnswer, VisitorUnmark, CommandResult, InputRefused,
                       ChatStart, ChatResume, LeaveMessage, ChatSurvey, ChatSend, ChatSync, ChatTyping, ChatSeen,
                       ChatEnd, ScreenAnswer, Signal]
AgentMessage = Union[AgentHello, WatchQueue, Join, Leave, EndSession, Ping,
                     MarkerAdd, MarkerRemove, Laser, ControlRequest, ControlRelease, AgentInput, Command,
                     ChatWatch, ChatAccept, ChatOpen, ChatClose, ChatTransfer, ChatSend, ChatSync, ChatTyping,
                     ChatSeen, ChatEnd, ChatSurvey, ScreenRequest, ScreenStop, Signal]

# ----- encoding -----------------------------------------------------------------

encoder = msgspec.json.Encoder()
visitor_decoder = msgspec.json.Decoder(VisitorMessage)
agent_decoder = msgspec.json.Decoder(AgentMessage)


def encode(message: Message) -> bytes:
    return encoder.encode(message)


class _Versioned(msgspec.Struct):
    t: object = None
    v: object = None


_versioned_decoder = msgspec.json.Decoder(_Versioned)


def hello_version(raw: bytes | str, tag: str) -> object:
    """The ``v`` of a frame whose ``t`` is ``tag`` (a hello), whatever else it holds; None otherwise."""
    try:
        frame = _versioned_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # (RecursionError: nested too deeply)
        return None
    return frame.v if frame.t == tag else None


def frame_type(raw: bytes | str) -> str | None:
    """The ``t`` of a frame that failed to decode, for the error reply (best effort)."""
    try:
        value = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # (RecursionError: nested too deeply)
        return None
    kind = value.get("t") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and len(kind) < 40 else None
