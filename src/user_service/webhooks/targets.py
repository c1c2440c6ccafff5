"""Where a webhook may point: an https URL (http only into WEBHOOK_ALLOWED_NETWORKS) whose
host resolves only to public addresses, or to ones in those networks. Checked when the URL
is given and again before each attempt, which connects to the address it checked: DNS may
answer differently by then (rebinding)."""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_LENGTH = 2000
RESOLVE_TIMEOUT = 5  # seconds


class UnsafeTargetError(ValueError):
    """The URL may not be called; the message says why, for the one who gave it."""


@dataclass(frozen=True)
class Target:
    https: bool
    host: str  # as in the URL: the Host header, and the name TLS checks
    port: int
    path: str  # with its query
    address: Address  # where to connect: checked

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.https else 80) else f"{host}:{self.port}"


def parse(url: str) -> tuple[bool, str, int, str]:
    """https?, host, port, path of `url`, or UnsafeTargetError naming what is wrong."""
    if len(url) > MAX_LENGTH:
        raise UnsafeTargetError(f"is longer than {MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTargetError(f"is not a URL: {exc}") from None
    if parts.scheme not in ("https", "http"):
        raise UnsafeTargetError("must be an https URL (http only into WEBHOOK_ALLOWED_NETWORKS)")
    if not parts.hostname:
        raise UnsafeTargetError("has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTargetError("may not carry credentials: the signature proves the sender")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise UnsafeTargetError("may not contain spaces or control characters")
    https = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return https, parts.hostname, port or (443 if https else 80), path


def refused(address: Address) -> str | None:
    """Why a webhook may not reach `address` outside the allowed networks, if it may not."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # The narrower names first: Python counts link-local, reserved and unspecified addresses
    # as private too.
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not address.is_global:
        return "not a public address"
    return None


async def resolve(url: str, allowed: Sequence[Network]) -> Target:
    """The checked target of `url`; UnsafeTargetError if any address its host resolves to
    is out of bounds (one bad answer among good ones is refused: a retry might get it)."""
    https, host, port, path = parse(url)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except (OSError, TimeoutError) as exc:
            raise UnsafeTargetError(f"has a host that does not resolve: {host}") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        inside = any(address in network for network in allowed)
        why = None if inside else refused(address)
        if why is not None:
            raise UnsafeTargetError(f"reaches {address}, {why}, outside WEBHOOK_ALLOWED_NETWORKS")
        if not https and not inside:
            raise UnsafeTargetError("must be https: http only into WEBHOOK_ALLOWED_NETWORKS")
    return Target(https, host, port, path, addresses[0])
