"""https upstreams: real TLS servers with certificates from a private CA
(trustme). The proxy checks the upstream's certificate and name against the
system's CAs, or against `proxy.upstream_ca_file`; `proxy.upstream_tls_verify
= false` accepts any certificate. A certificate it cannot verify gives the
visitor a 502 that says so."""

from __future__ import annotations

import logging
import ssl

import aiohttp
import pytest
import trustme
from aiohttp import WSMsgType, web

from conftest import TIMEOUT, echo_app, fetch, upstream_headers
from test_proxy_http import NAVIGATE, injected, site_app
from test_proxy_websocket import ws_app

HOST = {"Host": "shop.test"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*(names or ("localhost", "127.0.0.1"))).configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_an_upstream_certified_by_the_configured_ca_is_proxied_and_injected(start_app, start_proxy, ca,
                                                                                  ca_file):
    port = await start_app(site_app(), ssl_context=server_context(ca))
    service = await start_proxy(f"https://localhost:{port}", upstream_ca_file=ca_file)
    response = await fetch(service.port, "GET", "/page", NAVIGATE)
    assert response.status == 200
    injected(response.body)
    # Again, on the pooled TLS connection.
    assert (await fetch(service.port, "GET", "/image.png")).status == 200


async def test_the_upstream_sees_its_own_name_and_the_public_one_forwarded(start_app, start_proxy, ca, ca_file):
    port = await start_app(echo_app(), ssl_context=server_context(ca))
    service = await start_proxy(f"https://localhost:{port}", upstream_ca_file=ca_file)
    seen = upstream_headers(await fetch(service.port, "GET", "/x"))
    assert seen["host"] == [f"localhost:{port}"]
    assert seen["x-forwarded-host"] == ["shop.test"] and seen["x-forwarded-proto"] == ["http"]


async def test_the_sites_websockets_go_over_tls_to_the_upstream(start_app, start_proxy, ca, ca_file):
    closes: list = []
    port = await start_app(ws_app(closes), ssl_context=server_context(ca))
    service = await start_proxy(f"https://localhost:{port}", upstream_ca_file=ca_file)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{service.port}/ws", headers=HOST) as ws:
            await ws.send_str("over tls")
            message = await ws.receive(TIMEOUT)
            assert message.type == WSMsgType.TEXT and message.data == "echo:over tls"


async def test_a_certificate_from_an_unknown_ca_gives_a_502_that_says_so(start_app, start_proxy, ca, caplog):
    port = await start_app(site_app(), ssl_context=server_context(ca))
    service = await start_proxy(f"https://localhost:{port}")  # the system's CAs: ours is not among them
    with caplog.at_level(logging.WARNING, logger="cobrowse.proxy"):
        response = await fetch(service.port, "GET", "/page", NAVIGATE)
    assert response.status == 502
    assert b"TLS certificate could not be verified" in response.body
    assert any("could not be verified" in r.getMessage() and "upstream_ca_file" in r.getMessage()
               for r in caplog.records)


async def test_a_certificate_for_another_name_gives_a_502(start_app, start_proxy, ca, ca_file, caplog):
    port = await start_app(site_app(), ssl_context=server_context(ca, "other.test"))
    service = await start_proxy(f"https://localhost:{port}", upstream_ca_file=ca_file)
    with caplog.at_level(logging.WARNING, logger="cobrowse.proxy"):
        response = await fetch(service.port, "GET", "/page", NAVIGATE)
    assert response.status == 502
    assert b"TLS certificate could not be verified" in response.body
    warning = next(r.getMessage() for r in caplog.records if "could not be verified" in r.getMessage())
    assert "mismatch" in warning.lower() and "upstream_ca_file" not in warning  # the CA is not the problem


async def test_with_verification_off_any_certificate_is_accepted(start_app, start_proxy, ca):
    port = await start_app(site_app(), ssl_context=server_context(ca, "other.test"))
    service = await start_proxy(f"https://localhost:{port}", upstream_tls_verify=False)
    response = await fetch(service.port, "GET", "/page", NAVIGATE)
    assert response.status == 200
    injected(response.body)
