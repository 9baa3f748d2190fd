"""Running the HTTP server on IPv4 and IPv6 sockets we bind ourselves."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Sequence

import uvicorn

from yiwang.core.settings import Settings

LOOPBACKS = ("127.0.0.1", "::1")
#: A loopback that this host does not have (IPv6 switched off, as in many containers).
MISSING_ADDRESS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


def bind(hosts: Sequence[str], port: int) -> list[socket.socket]:
    """Listening sockets for each host. "::" is one dual-stack socket (IPv4 and IPv6 on every
    interface); "localhost" is 127.0.0.1 and ::1 (either may be missing, not both); another
    name binds every address it resolves to. On failure no socket is left open."""
    sockets: list[socket.socket] = []
    seen: set[tuple[str, int]] = set()
    try:
        for host in hosts:
            host = host.strip("[]")
            if host == "localhost" or (host in LOOPBACKS and set(hosts) >= set(LOOPBACKS)):
                candidates, optional = (LOOPBACKS if host == "localhost" else (host,)), True
            else:
                candidates, optional = (host,), False
            for name in candidates:
                try:
                    sockets.extend(_bind_one(name, port, seen))
                except OSError as exc:
                    if not (optional and exc.errno in MISSING_ADDRESS):
                        raise
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, f"none of {list(hosts)} can be bound")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_one(host: str, port: int, seen: set[tuple[str, int]]) -> list[socket.socket]:
    if host in ("::", ""):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _listen(sock, ("::", port))
        except BaseException:
            sock.close()
            raise
        return [sock]
    made: list[socket.socket] = []
    try:
        for family, _, _, _, addr in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            key = (str(addr[0]), int(addr[1]))
            if key in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            made.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            _listen(sock, (str(addr[0]), int(addr[1]), *addr[2:]))
    except BaseException:
        for sock in made:
            sock.close()
        raise
    return made


def _listen(sock: socket.socket, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response's head and body leave at once instead of
    # waiting for the client's delayed acknowledgement (about 40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(addr)
    sock.listen(2048)
    sock.set_inheritable(True)


def run(
    settings: Settings, hosts: Sequence[str], port: int, *, start_worker: bool | None = None
) -> None:
    from yiwang.web.app import create_app
    from yiwang.web.logs import configure

    configure(settings.log_level, settings.log_json)
    app = create_app(settings, start_worker=start_worker)
    sockets = bind(hosts, port)
    config = uvicorn.Config(
        app,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    try:
        # Server.run picks uvloop when it is installed ("auto"); asyncio.run would not.
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
