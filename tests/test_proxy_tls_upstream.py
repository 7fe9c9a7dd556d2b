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

from cobrowse.config import Site
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


def recording_sni(context: ssl.SSLContext) -> list:
    """The server names clients sent in their TLS handshakes (None: no SNI)."""
    names: list = []
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    return names


async def test_an_ip_upstream_is_checked_against_the_sites_tls_server_name(start_app, start_proxy, ca, ca_file):
    # The usual production set-up: the public name points at the proxy, so the
    # upstream is reached by address, with a certificate for the public name.
    context = server_context(ca, "shop.example.test")
    sent_names = recording_sni(context)
    port = await start_app(site_app(), ssl_context=context)
    upstream = f"https://127.0.0.1:{port}"
    without = await start_proxy(upstream, upstream_ca_file=ca_file)
    assert (await fetch(without.port, "GET", "/page", NAVIGATE)).status == 502  # the certificate is not for 127.0.0.1
    service = await start_proxy(sites=(Site(host="*", upstream=upstream, tls_server_name="shop.example.test"),),
                                upstream_ca_file=ca_file)
    response = await fetch(service.port, "GET", "/page", NAVIGATE)
    assert response.status == 200
    injected(response.body)
    assert sent_names[-1] == "shop.example.test"


async def test_sites_with_one_upstream_and_two_tls_names_do_not_share_connections(start_app, start_proxy, ca,
                                                                                   ca_file):
    context = server_context(ca, "a.example.test", "b.example.test")
    sent_names = recording_sni(context)
    port = await start_app(echo_app(), ssl_context=context)
    upstream = f"https://127.0.0.1:{port}"
    service = await start_proxy(sites=(Site(host="a.test", upstream=upstream, tls_server_name="a.example.test"),
                                       Site(host="b.test", upstream=upstream, tls_server_name="b.example.test")),
                                upstream_ca_file=ca_file)
    for host in ("a.test", "b.test", "a.test", "b.test"):
        assert (await fetch(service.port, "GET", "/x", {"Host": host})).status == 200
    # One handshake per name; the second round reused the pooled connections.
    assert sent_names == ["a.example.test", "b.example.test"]


async def test_with_pass_host_header_the_upstream_sees_the_public_host(start_app, start_proxy, ca, ca_file):
    port = await start_app(echo_app(), ssl_context=server_context(ca, "shop.example.test"))
    service = await start_proxy(sites=(Site(host="*", upstream=f"https://127.0.0.1:{port}", pass_host_header=True,
                                            tls_server_name="shop.example.test"),),
                                upstream_ca_file=ca_file)
    seen = upstream_headers(await fetch(service.port, "GET", "/x", {"Host": "shop.test:8080"}))
    assert seen["host"] == ["shop.test:8080"] and seen["x-forwarded-host"] == ["shop.test:8080"]
