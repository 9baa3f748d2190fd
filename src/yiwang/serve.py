"""Running the HTTP server on IPv4 and IPv6 sockets we bind ourselves, in one process or
in several (``--processes``) that share the port.

Several processes: the parent binds one set of listening sockets per process with
``SO_REUSEPORT`` (the kernel spreads new connections over them, so that a burst of
keep-alive connections is not all taken by whichever process woke first, and
``yiwang.balance`` evens out what the kernel's hash leaves uneven), forks the processes,
keeps every socket open (a connection that arrives for a process being restarted waits in
its socket's queue) and restarts a process that dies. SIGTERM or SIGINT to the parent
stops them all, each finishing its requests.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from yiwang import balance
from yiwang.core.settings import Settings

LOOPBACKS = ("127.0.0.1", "::1")
#: A loopback that this host does not have (IPv6 switched off, as in many containers).
MISSING_ADDRESS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


log = logging.getLogger("yiwang.serve")
#: a process that dies sooner than this after its start counts as failing to start
QUICK_DEATH_SECONDS = 5.0
#: where prometheus_client's multiprocess mode keeps the processes' metrics (its own
#: variable; ``web.middleware.Metrics.latest`` reads it too)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: give up after this many quick deaths in a row (a broken configuration, not bad luck)
MAX_QUICK_DEATHS = 5


def bind(hosts: Sequence[str], port: int, *, reuse_port: bool = False) -> list[socket.socket]:
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
                    sockets.extend(_bind_one(name, port, seen, reuse_port))
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


def _bind_one(
    host: str, port: int, seen: set[tuple[str, int]], reuse_port: bool = False
) -> list[socket.socket]:
    if host in ("::", ""):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            _listen(sock, ("::", port), reuse_port)
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
            _listen(sock, (str(addr[0]), int(addr[1]), *addr[2:]), reuse_port)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    return made


def _listen(
    sock: socket.socket,
    addr: tuple[str, int] | tuple[str, int, int, int],
    reuse_port: bool = False,
) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # Accepted connections inherit it: a response's head and body leave at once instead of
    # waiting for the client's delayed acknowledgement (about 40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(addr)
    sock.listen(2048)
    sock.set_inheritable(True)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def bind_sets(hosts: Sequence[str], port: int, count: int) -> list[list[socket.socket]]:
    """``count`` sets of listening sockets on the same addresses (``SO_REUSEPORT``), one per
    process; port 0 picks one free port for all of them. A port another server holds is
    an error, as for one process (``SO_REUSEPORT`` alone would share it silently with
    another instance run by the same user)."""
    probe = bind(hosts, port)  # plain sockets: EADDRINUSE if anyone listens there
    port = probe[0].getsockname()[1]
    for sock in probe:
        sock.close()
    first = bind(hosts, port, reuse_port=True)
    sets = [first]
    try:
        for _ in range(count - 1):
            more: list[socket.socket] = []
            sets.append(more)
            for model in first:
                sock = socket.socket(model.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
                more.append(sock)
                if model.family == socket.AF_INET6:
                    only = model.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, only)
                _listen(sock, model.getsockname(), True)
    except BaseException:
        for group in sets:
            for sock in group:
                sock.close()
        raise
    return sets


def run(
    settings: Settings,
    hosts: Sequence[str],
    port: int,
    *,
    start_worker: bool | None = None,
    processes: int = 1,
) -> None:
    from yiwang.web.logs import configure

    configure(settings.log_level, settings.log_json)
    if processes <= 1:
        sockets = bind(hosts, port)
        try:
            _serve(settings, sockets, start_worker)
        finally:
            _close(sockets)
        return
    sets = bind_sets(hosts, port, processes)
    _share_metrics(settings)
    try:
        # events and jobs in the first process only (when in the server at all): the
        # others serve requests
        worker = settings.run_worker_in_server if start_worker is None else start_worker
        _supervise(settings, sets, worker)
    finally:
        for group in sets:
            _close(group)


def _share_metrics(settings: Settings) -> None:
    """Several processes keep their Prometheus metrics in files that ``/metrics`` adds up
    (prometheus_client's multiprocess mode), or each scrape would show whichever process
    answered it. The folder is ``PROMETHEUS_MULTIPROC_DIR`` when set, else
    ``var_dir/metrics``; the files of an earlier run are removed first. Set before the
    processes are forked and import prometheus_client."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or settings.var_dir / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already: metrics made from now on use the files
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]


def _metrics_dead(pid: int) -> None:
    """A dead process's live gauges leave the sum (its counters stay: they counted)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _close(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def _serve(
    settings: Settings,
    sockets: list[socket.socket],
    start_worker: bool | None,
    shares: balance.Shares | None = None,
) -> None:
    from yiwang.web.app import create_app

    app = create_app(settings, start_worker=start_worker, warm=True)
    config = uvicorn.Config(
        app,
        # several processes: keep-alive connections spread evenly over them
        http=balance.protocol(shares) if shares is not None else "auto",
        ws="none",  # no WebSocket routes: an upgrade is answered as a plain request
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # Server.run picks uvloop when it is installed ("auto"); asyncio.run would not.
    server.run(sockets=sockets)


def _supervise(settings: Settings, sets: list[list[socket.socket]], worker: bool) -> None:
    children: dict[int, tuple[int, float]] = {}  # pid: (slot, started)
    stopping = False
    shares = balance.Shares(len(sets))

    def spawn(slot: int) -> None:
        if stopping:
            return
        parent = os.getpid()
        # no stop signal between the fork and the child's registration (the parent would
        # not know the child) or before the child drops the parent's handler
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid != 0:
                children[pid] = (slot, time.monotonic())
                return
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        # the child: default signals (uvicorn sets its own), its own sockets
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        _die_with(parent)
        for other, group in enumerate(sets):
            if other != slot:
                _close(group)
        code = 0
        try:
            shares.take(slot)
            _serve(settings, sets[slot], worker and slot == 0, shares)
        except BaseException:
            log.exception("server process %d failed", slot)
            code = 1
        finally:
            logging.shutdown()
            os._exit(code)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # new connections are refused at once (a balancer tries another server) instead of
        # waiting in queues that nobody will read
        for group in sets:
            _close(group)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(len(sets)):
            spawn(slot)
        log.info("serving with %d processes", len(sets))
        quick = 0
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            slot, started = children.pop(pid, (-1, 0.0))
            if slot < 0 or stopping:
                continue
            shares.forget(slot)  # its connections died with it
            _metrics_dead(pid)
            lived = time.monotonic() - started
            quick = quick + 1 if lived < QUICK_DEATH_SECONDS else 0
            log.warning(
                "server process %d ended (%s) after %.0f s; starting it again",
                slot, _describe(status), lived,
            )  # fmt: skip
            if quick >= MAX_QUICK_DEATHS:
                log.error("server processes keep failing at start; stopping")
                stop(signal.SIGTERM, None)
                raise SystemExit(1)
            time.sleep(min(1.0 * quick, 10.0))
            if not stopping:
                spawn(slot)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _die_with(parent: int) -> None:
    """Ask Linux to stop this child with SIGTERM when its parent dies (even by SIGKILL), so
    that no orphaned server keeps the port."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's SIGTERM still reaches us
        return
    if os.getppid() != parent:  # it died before we asked
        os._exit(0)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
