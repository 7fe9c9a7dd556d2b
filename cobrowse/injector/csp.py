"""Let our script and websocket run under a site's Content-Security-Policy.

The rule is to add exactly what we need and nothing else:

* Where the policy already trusts scripts by nonce, hash or 'strict-dynamic',
  we add a per-response nonce (our tag carries it). Adding a *nonce* to a
  policy that relies on 'unsafe-inline' would silently disable the site's own
  inline scripts, so there we add a path-specific source instead
  (``https://shop.example/__cobrowse/``), which trusts only our prefix.
* ``script-src-elem`` governs ``<script>`` elements before ``script-src``,
  which comes before ``default-src``. When only ``default-src`` applies, we add
  a ``script-src`` (or ``connect-src``) that copies it, so images, fonts and
  the rest stay exactly as restricted as before.
* Our websocket and HTTP endpoints under the prefix go into ``connect-src``.
* A ``trusted-types`` allow-list gets our policy name, so the loader may
  create its script URL under ``require-trusted-types-for 'script'``.

Directives we do not touch keep their text. Report-Only policies are never
passed here: they enforce nothing and the site reads their reports.
"""

from __future__ import annotations

from dataclasses import dataclass

TRUSTED_TYPES_POLICY = "cobrowse"

_SCRIPT_FALLBACK = ("script-src-elem", "script-src", "default-src")
_CONNECT_FALLBACK = ("connect-src", "default-src")
_TRUST_BY_TOKEN_PREFIXES = ("'nonce-", "'sha256-", "'sha384-", "'sha512-")


@dataclass(frozen=True, slots=True)
class CspAllowance:
    """What one response must allow for our script to work."""

    nonce: str  # per-response nonce our <script> tag carries
    script_source: str  # path source for our prefix, e.g. "https://shop.example/__cobrowse/"
    connect_sources: tuple[str, ...]  # our prefix over http(s) and ws(s)


def allowance_for(origin: str, prefix: str, nonce: str) -> CspAllowance:
    """Sources for ``origin`` (``scheme://host[:port]``) and our reserved ``prefix``."""
    script_source = origin + prefix
    if origin.startswith("https://"):
        socket_source = "wss://" + origin[len("https://"):] + prefix
    else:
        socket_source = "ws://" + origin.split("://", 1)[-1] + prefix
    return CspAllowance(nonce, script_source, (script_source, socket_source))


def allows_inline_tag(value: str) -> bool:
    """Whether our inline tag (with our nonce) runs under this policy once rewritten.

    True without a script restriction, and where the rewrite adds our nonce
    (the policy trusts nonces, hashes or 'strict-dynamic') or the policy has
    'unsafe-inline'. A policy of host sources only gets a path source for our
    prefix instead, which an inline script cannot use: those pages keep the
    external tag. Every policy of a comma-separated value must agree.
    """
    for policy in value.split(","):
        sources = None
        directives: dict[str, list[str]] = {}
        for raw in policy.split(";"):
            parts = raw.split()
            if parts:
                directives.setdefault(parts[0].lower(), [t.lower() for t in parts[1:]])
        for name in _SCRIPT_FALLBACK:
            if name in directives:
                sources = directives[name]
                break
        if sources is None:
            continue
        if "'strict-dynamic'" in sources or "'unsafe-inline'" in sources:
            continue
        if any(t.startswith(_TRUST_BY_TOKEN_PREFIXES) for t in sources):
            continue
        return False
    return True


def rewrite_csp(value: str, allowance: CspAllowance) -> str:
    """Rewrite one Content-Security-Policy header (or meta content) value.

    A header value may hold several policies separated by commas; each is
    enforced on its own, so each is amended on its own.
    """
    if "," in value:
        return ", ".join(_rewrite_policy(p.strip(), allowance) for p in value.split(","))
    return _rewrite_policy(value.strip(), allowance)


def _rewrite_policy(policy: str, allowance: CspAllowance) -> str:
    # Keep each directive's original text; only the ones we change are rebuilt.
    texts: list[str] = []
    tokens_by_name: dict[str, list[str]] = {}
    index_by_name: dict[str, int] = {}
    for raw in policy.split(";"):
        raw = raw.strip()
        if not raw:
            continue  # trailing or doubled ";" are legal
        parts = raw.split()
        name = parts[0].lower()
        if name in index_by_name:
            # Only the first occurrence of a directive counts; keep the rest as written.
            texts.append(raw)
            continue
        index_by_name[name] = len(texts)
        tokens_by_name[name] = parts[1:]
        texts.append(raw)

    def replace(name: str, tokens: list[str]) -> None:
        directive = name + (" " + " ".join(tokens) if tokens else "")
        if name in index_by_name:
            texts[index_by_name[name]] = directive
        else:
            index_by_name[name] = len(texts)
            texts.append(directive)

    script_directive = next((d for d in _SCRIPT_FALLBACK if d in tokens_by_name), None)
    if script_directive is not None:
        sources = tokens_by_name[script_directive]
        lowered = [s.lower() for s in sources]
        if "'strict-dynamic'" in lowered or any(s.startswith(_TRUST_BY_TOKEN_PREFIXES) for s in lowered):
            ours = f"'nonce-{allowance.nonce}'"
        else:
            ours = allowance.script_source
        target = "script-src" if script_directive == "default-src" else script_directive
        replace(target, _without_none(sources) + [ours])

    connect_directive = next((d for d in _CONNECT_FALLBACK if d in tokens_by_name), None)
    if connect_directive is not None:
        sources = _without_none(tokens_by_name[connect_directive])
        if connect_directive == "default-src":
            # Nonces and hashes mean nothing to connect-src; drop them from the copy.
            sources = [s for s in sources if not s.lower().startswith(_TRUST_BY_TOKEN_PREFIXES)
                       and s.lower() != "'strict-dynamic'"]
        replace("connect-src", sources + [s for s in allowance.connect_sources if s not in sources])

    trusted_types = tokens_by_name.get("trusted-types")
    if trusted_types is not None and "*" not in trusted_types and TRUSTED_TYPES_POLICY not in trusted_types:
        replace("trusted-types", _without_none(trusted_types) + [TRUSTED_TYPES_POLICY])

    return "; ".join(texts)


def _without_none(sources: list[str]) -> list[str]:
    # 'none' next to any other source is ignored by browsers (with a console
    # warning); dropping it keeps the meaning "only what is listed".
    return [s for s in sources if s.lower() != "'none'"]
