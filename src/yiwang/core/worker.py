"""The worker loop: event dispatch and periodic jobs, until told to stop.

Runs as ``yiwang worker``, and inside ``yiwang serve`` when no separate worker runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket

from yiwang.core.db import Database
from yiwang.core.events.dispatcher import Dispatcher
from yiwang.core.jobs.runner import Scheduler
from yiwang.core.plugins import Registry
from yiwang.core.settings import Settings

log = logging.getLogger("yiwang.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self, db: Database, settings: Settings, registry: Registry, worker_id: str | None = None
    ) -> None:
        self.worker_id = worker_id or new_worker_id()
        self.dispatcher = Dispatcher(db, settings, registry, self.worker_id)
        self.scheduler = Scheduler(db, settings, registry, self.worker_id)
        self.poll = settings.worker_poll_seconds
        self.stopping = asyncio.Event()

    async def _loop(self, step: str) -> None:
        while not self.stopping.is_set():
            busy = False
            try:
                if step == "events":
                    busy = await self.dispatcher.run_once() > 0
                else:
                    busy = bool(await self.scheduler.run_due())
            except Exception:  # keep the loop alive through database hiccups
                log.exception("worker %s loop failed", step)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=self.poll)

    async def run(self) -> None:
        await self.scheduler.sync()
        log.info("worker %s started", self.worker_id)
        await asyncio.gather(self._loop("events"), self._loop("jobs"))
        log.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        self.stopping.set()
