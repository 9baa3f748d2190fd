"""Runs periodic jobs. Each run is claimed with a conditional UPDATE on the job's schedule
row (a lease): whichever worker's update matches runs the job, the others see zero rows.
The lease is renewed while the job runs, so a long job is never started twice; a worker
that dies leaves a lease that simply runs out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from yiwang.core.db import Database
from yiwang.core.jobs.models import JobSchedule
from yiwang.core.plugins import PeriodicJob, Registry
from yiwang.core.settings import Settings
from yiwang.core.timeutil import utcnow

log = logging.getLogger("yiwang.jobs")


@dataclass(frozen=True)
class JobContext:
    db: Database
    settings: Settings
    worker_id: str
    job: str


class Scheduler:
    def __init__(
        self, db: Database, settings: Settings, registry: Registry, worker_id: str
    ) -> None:
        self.db, self.settings, self.registry, self.worker_id = db, settings, registry, worker_id
        self.lease = timedelta(seconds=settings.job_lease_seconds)

    async def sync(self) -> None:
        """Make sure every registered job has its schedule row."""
        async with self.db.session() as session:
            insert = sqlite_insert if self.db.dialect == "sqlite" else pg_insert
            for job in self.registry.jobs.values():
                # Several processes start at once: whoever inserts first wins, quietly.
                await session.execute(
                    insert(JobSchedule)
                    .values(
                        name=job.name, interval_seconds=job.interval_seconds, next_run_at=utcnow()
                    )
                    .on_conflict_do_update(
                        index_elements=[JobSchedule.name],
                        set_={"interval_seconds": job.interval_seconds},
                    )
                )

    async def _claim(self, name: str) -> bool:
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                update(JobSchedule)
                .where(
                    JobSchedule.name == name,
                    JobSchedule.next_run_at <= now,
                    JobSchedule.locked_until.is_(None) | (JobSchedule.locked_until < now),
                )
                .values(
                    locked_by=self.worker_id, locked_until=now + self.lease, last_started_at=now
                )
            )
            return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def _renew(self, name: str) -> None:
        """Keep the lease while the job runs. A failed renewal is logged and tried again;
        it never stops the job or its completion."""
        while True:
            await asyncio.sleep(max(1.0, self.lease.total_seconds() / 3))
            try:
                await self._renew_once(name)
            except Exception:  # the database may be busy; the next round tries again
                log.warning("could not renew the lease of job %s", name)

    async def _renew_once(self, name: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(JobSchedule)
                .where(JobSchedule.name == name, JobSchedule.locked_by == self.worker_id)
                .values(locked_until=utcnow() + self.lease)
            )

    async def _run(self, job: PeriodicJob) -> None:
        started = utcnow()
        renewer = asyncio.create_task(self._renew(job.name))
        status, error = "ok", ""
        try:
            await job.func(JobContext(self.db, self.settings, self.worker_id, job.name))
        except Exception as exc:  # a job may fail in any way; record it and go on
            status, error = "failed", "".join(traceback.format_exception(exc))[-4000:]
            log.error("job %s failed: %s", job.name, exc)
        finally:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
        async with self.db.session() as session:
            await session.execute(
                update(JobSchedule)
                .where(JobSchedule.name == job.name, JobSchedule.locked_by == self.worker_id)
                .values(
                    locked_by=None,
                    locked_until=None,
                    last_finished_at=utcnow(),
                    last_status=status,
                    last_error=error,
                    run_count=JobSchedule.run_count + 1,
                    next_run_at=started + timedelta(seconds=job.interval_seconds),
                )
            )

    async def run_due(self) -> list[str]:
        """Run every due job this worker manages to claim; return their names."""
        ran = []
        for job in list(self.registry.jobs.values()):
            if await self._claim(job.name):
                await self._run(job)
                ran.append(job.name)
        return ran
