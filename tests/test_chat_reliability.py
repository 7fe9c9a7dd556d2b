"""Chat reliability against the whole service: dropped connections and a killed server.

- Both sides send hundreds of messages while their websockets are cut again
  and again (no closing handshake: frames in flight are lost). Afterwards
  each side holds every message exactly once, in one order, and each
  sender's messages in the order they were written.
- The server is killed with SIGKILL mid-conversation and started again on the
  same data directory: every message that was acknowledged is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time

import argon2
import pytest

from cobrowse.server import Service
from cobrowse.storage import accounts

from chat_clients import AgentClient, VisitorClient, agent_cookie, start_shop_upstream
from conftest import make_config

PASSWORD = "correct horse battery"


@pytest.fixture
def cheap_hashes():
    previous = accounts.set_password_hasher(argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST))
    yield
    accounts.set_password_hasher(previous)




def _assert_same_conversation(visitor: VisitorClient, agent: AgentClient) -> None:
    visible_to_visitor = {seq: m for seq, m in agent.held.items() if m["kind"] != "note"}
    assert visitor.held == visible_to_visitor
    seqs = sorted(agent.held)
    assert seqs == list(range(1, len(seqs) + 1)), "no gaps, no repeats"
    by_id = {m["id"]: seq for seq, m in agent.held.items()}
    assert len(by_id) == len(agent.held), "no message stored twice"
    for side in (visitor, agent):
        written = [by_id[message_id] for message_id in side.sent_order]
        assert written == sorted(written), "each sender's messages keep the order they were written in"
        assert side.outbox == {}


@contextlib.asynccontextmanager
async def chat_pair(tmp_path):
    """A service, and a visitor and an agent in one conversation."""
    runner, upstream_port = await start_shop_upstream()
    service = Service(make_config(f"http://127.0.0.1:{upstream_port}", data_dir=str(tmp_path)))
    await service.start()
    try:
        await accounts.create_user(service.db, "rel-agent", PASSWORD, display_name="Rae")
        console = f"http://127.0.0.1:{service.console_port}"
        cookie = await agent_cookie(service.console_port, "rel-agent", PASSWORD)
        visitor = VisitorClient(f"ws://127.0.0.1:{service.port}/__cobrowse/ws")
        agent = AgentClient(f"ws://127.0.0.1:{service.console_port}/ws", cookie, console)
        await visitor.connect()
        await agent.connect()
        await agent.wait_for(lambda: any(o["conversation"] == visitor.conversation for o in agent.offers),
                             "the offer")
        await agent.accept(visitor.conversation)
        yield visitor, agent
        await visitor.close()
        await agent.close()
    finally:
        await service.stop()
        await runner.cleanup()


async def test_messages_survive_repeated_drops(tmp_path, cheap_hashes):
    async with chat_pair(tmp_path) as (visitor, agent):
        rng = random.Random(5)
        count = 300

        async def talk(side, label: str) -> None:
            for i in range(count):
                await side.send(f"{label} {i}")
                if rng.random() < 0.03:
                    side.drop()
                    await asyncio.sleep(rng.random() * 0.05)
                    await side.connect()
                elif rng.random() < 0.2:
                    await asyncio.sleep(0.002)

        await asyncio.gather(talk(visitor, "visitor"), talk(agent, "agent"))
        assert visitor.connects > 3 and agent.connects > 3, "the test dropped connections"
        total = 2 * count
        for side in (visitor, agent):
            await side.wait_for(lambda side=side: not side.outbox, "every message acked", 60)
        # A last resync, as after any reconnect, brings both sides up to date.
        for side in (visitor, agent):
            side.drop()
            await side.connect()
            await side.wait_for(
                lambda side=side: sum(m["sender"] != "system" for m in side.held.values()) >= total,
                "every message")
        _assert_same_conversation(visitor, agent)
        texts = [m["text"] for _, m in sorted(agent.held.items()) if m["sender"] == "visitor"]
        assert texts == [f"visitor {i}" for i in range(count)]
        texts = [m["text"] for _, m in sorted(agent.held.items()) if m["sender"] == "agent"]
        assert texts == [f"agent {i}" for i in range(count)]


async def test_a_resync_fills_a_gap_below_the_newest_message_held(tmp_path, cheap_hashes):
    """A history page cut off by a dropped connection, while live messages came in,
    leaves a gap below the newest message held: the resync starts at the gap."""
    async with chat_pair(tmp_path) as (visitor, agent):
        for i in range(12):
            await agent.send(f"agent {i}")
        await visitor.wait_for(lambda: sum(m["sender"] == "agent" for m in visitor.held.values()) == 12, "12 messages")
        for side in (visitor, agent):
            newest = max(side.held)
            for seq in (newest - 7, newest - 6, newest - 5):  # never received
                del side.held[seq]
            assert side.last_seq == newest - 8
            side.drop()
            await side.connect()
            await side.wait_for(lambda side=side, newest=newest: all(n in side.held for n in range(1, newest + 1)),
                                "the gap filled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(config_path, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cobrowse", "serve", "--config", str(config_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("server did not start")


async def test_acknowledged_messages_survive_sigkill(tmp_path, cheap_hashes):
    runner, upstream_port = await start_shop_upstream()
    proxy_port, console_port = _free_port(), _free_port()
    config_path = tmp_path / "cobrowse.toml"
    config_path.write_text(textwrap.dedent(f"""
        [server]
        listen = "127.0.0.1:{proxy_port}"
        data_dir = "{tmp_path / 'data'}"
        [console]
        listen = "127.0.0.1:{console_port}"
        [[site]]
        host = "*"
        upstream = "http://127.0.0.1:{upstream_port}"
    """))
    env = dict(os.environ)
    create = subprocess.run([sys.executable, "-m", "cobrowse", "user", "add", "kill-agent", "--config",
                             str(config_path), "--display-name", "Kim", "--password-stdin"],
                            input=PASSWORD + "\n", text=True, capture_output=True, env=env)
    assert create.returncode == 0, create.stderr
    server = _start_server(config_path, env)
    visitor = agent = None
    try:
        await _wait_listening(proxy_port, server)
        await _wait_listening(console_port, server)
        console = f"http://127.0.0.1:{console_port}"
        cookie = await agent_cookie(console_port, "kill-agent", PASSWORD)
        visitor = VisitorClient(f"ws://127.0.0.1:{proxy_port}/__cobrowse/ws")
        agent = AgentClient(f"ws://127.0.0.1:{console_port}/ws", cookie, console)
        await visitor.connect()
        await agent.connect()
        await agent.wait_for(lambda: any(o["conversation"] == visitor.conversation for o in agent.offers),
                             "the offer")
        await agent.accept(visitor.conversation)

        async def talk(side, label: str) -> None:
            for i in range(400):
                await side.send(f"{label} {i}")
                await asyncio.sleep(0.001)

        talking = asyncio.gather(talk(visitor, "visitor"), talk(agent, "agent"))
        # Kill it mid-conversation, once some messages are acknowledged and others are not.
        await visitor.wait_for(lambda: len(visitor.acked) > 50, "some acks")
        server.send_signal(signal.SIGKILL)
        server.wait()
        await talking
        acked = {**visitor.acked, **agent.acked}
        assert acked and (visitor.outbox or agent.outbox), "killed while messages were still in flight"

        server = _start_server(config_path, env)
        await _wait_listening(proxy_port, server)
        await _wait_listening(console_port, server)
        survivor = AgentClient(f"ws://127.0.0.1:{console_port}/ws", cookie, console)
        survivor.conversation = visitor.conversation
        await survivor.connect()
        await survivor.wait_for(lambda: len(survivor.held) >= len(acked), "the stored messages")
        stored = {m["id"]: seq for seq, m in survivor.held.items()}
        lost = {message_id for message_id in acked if message_id not in stored}
        assert not lost, f"{len(lost)} acknowledged messages were lost"
        assert all(stored[message_id] == seq for message_id, seq in acked.items())
        await survivor.close()
    finally:
        for side in (visitor, agent):
            if side is not None and side.reader is not None:
                side.reader.cancel()
        if server.poll() is None:
            server.terminate()
            server.wait(10)
        await runner.cleanup()
