"""HTTP for webhook deliveries: the connection goes to the very address that was checked.

A webhook URL is user input, so its receiver must not be on the manager's own network
(SSRF). Checking a name's DNS answer and then letting ``requests`` resolve it again lets a
name answer a public address to the check and 127.0.0.1 to the connection (DNS
rebinding). Here the connection itself resolves once, refuses the answer when any address
in it is not public, and connects to exactly those addresses; TLS still sends the name
(SNI) and checks the certificate against it, and the Host header is the name.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from .models import LOCAL_HOSTS


class NotPublic(Exception):
    """The receiver's name resolves to an address webhooks may not reach."""


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise NotPublic unless every address is public (or the settings allow it)."""
    if settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS:
        return
    if host in LOCAL_HOSTS and (settings.DEBUG or settings.WEBHOOKS_ALLOW_HTTP_LOCALHOST):
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global:
            # The address stays out of the message: it would tell the owner what an
            # internal name resolves to.
            raise NotPublic(
                f"{host} is not a public address; webhooks only reach public receivers "
                "(an administrator can allow internal ones with "
                "WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true)"
            )


def _connect(host: str, port: int, timeout: Any, options: Any) -> socket.socket:
    """Resolve ``host`` once, check every answer, then connect to one of those answers."""
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    check_addresses(host, [str(info[4][0]) for info in infos])
    error: OSError | None = None
    for family, kind, proto, _name, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            if timeout is None or isinstance(timeout, int | float):
                sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error or OSError(f"no address for {host}")


class _CheckedConnectionMixin:
    host: str
    port: int
    timeout: Any
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        # What urllib3's own _new_conn raises, so requests reports it the usual way;
        # NotPublic is none of those and reaches the caller untouched.
        try:
            return _connect(self._dns_host, self.port, self.timeout, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connecting to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"cannot connect: {exc}") from exc  # type: ignore[arg-type]


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPPool,
            "https": _CheckedHTTPSPool,
        }


def session() -> requests.Session:
    """A session whose every connection is checked. No proxies from the environment: a
    proxy would resolve the name again, out of the check's sight."""
    checked = requests.Session()
    checked.trust_env = False
    adapter = _CheckedAdapter(max_retries=0)
    checked.mount("http://", adapter)
    checked.mount("https://", adapter)
    return checked
