"""Message broker: who receives a frame addressed to a topic.

Connections subscribe to the topics they listen on (their visitor tab, their
session's agents, their own agent key); the hub publishes encoded frames to
topics. The in-memory broker delivers within this process. A Redis broker for
several processes implements the same two methods with PUBLISH/SUBSCRIBE and
treats Redis as a lossy wake-up channel (frames carry sequence numbers and
clients resync on gaps), so the session logic never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Deliver = Callable[[bytes], None]


class Broker(Protocol):
    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        """Call ``deliver(frame)`` for every frame published on ``topic``; returns an unsubscribe function."""

    def publish(self, topic: str, frame: bytes) -> int:
        """Deliver ``frame`` to the topic's subscribers; returns how many were reached (locally)."""


def visitor_tab_topic(session: str, tab: str) -> str:
    return f"v:{session}:{tab}"


def visitor_topic(session: str) -> str:
    return f"v:{session}"


def agents_topic(session: str) -> str:
    return f"a:{session}"


def agent_topic(key: str) -> str:
    return f"c:{key}"


QUEUE_TOPIC = "queue"


class InMemoryBroker:
    """Single-process delivery: a dict of topic -> subscribers, called synchronously."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Deliver]] = {}

    def subscribe(self, topic: str, deliver: Deliver) -> Callable[[], None]:
        self._subscribers.setdefault(topic, []).append(deliver)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                try:
                    subscribers.remove(deliver)
                except ValueError:
                    return
                if not subscribers:
                    del self._subscribers[topic]

        return unsubscribe

    def publish(self, topic: str, frame: bytes) -> int:
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return 0
        for deliver in tuple(subscribers):
            deliver(frame)
        return len(subscribers)
