"""The staff pages' live feed (server-sent events): new cases, and cases turning yellow or
red, in the user's scope, read from the outbox.

Outbox ids are taken from a sequence before their transaction commits, so on PostgreSQL an
event can become visible after one with a larger id (its transaction was longer). A feed
that only asks for ids above the largest it has seen skips it for good. So each poll looks
again at the ids of the last ``LOOKBACK`` seconds and remembers which of them it has sent:
an event whose transaction commits up to ``LOOKBACK`` seconds after a newer one's is still
announced. (One later still is not; the queue the page reloads on the next event shows it
anyway.) On SQLite, where writers commit in the order of their ids, the looking again
finds nothing new.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.auth.principal import Principal
from yiwang.core.events.models import OutboxEvent
from yiwang.core.timeutil import as_utc, utcnow
from yiwang.linkage import queries
from yiwang.linkage.intake import code_for
from yiwang.linkage.models import Case

TOPICS = ("linkage.case.accepted", "linkage.case.overdue", "linkage.case.warning")
#: seconds during which an event may still become visible behind newer ones
LOOKBACK = 15.0
#: at most this many events sent per poll (the rest at the next)
BATCH = 100
#: at most this many sent ids remembered (a storm of events narrows the look back)
REMEMBERED = 2000

_NEWEST = select(func.max(OutboxEvent.id))
#: the newest events, to find where the last ``LOOKBACK`` seconds begin (bounded: under a
#: storm of events a new stream looks back less far)
_RECENT = select(OutboxEvent.id, OutboxEvent.created_at).order_by(OutboxEvent.id.desc()).limit(2000)


@dataclass(frozen=True)
class LiveEvent:
    id: int
    case_id: int
    code: str  # the case's tracking code
    kind: str  # accepted, overdue, warning


@dataclass
class Feed:
    """One stream's position: everything at or below ``floor`` is done; above it, the ids
    in ``sent`` have been sent."""

    principal: Principal
    floor: int
    sent: set[int] = field(default_factory=set)
    #: (when, the id up to which that poll looked): the floor rises to each once it is
    #: ``LOOKBACK`` seconds old
    marks: deque[tuple[float, int]] = field(default_factory=deque)
    _query: Select[int, str, int, datetime] | None = field(default=None, repr=False)

    async def poll(self, session: AsyncSession, now: float | None = None) -> list[LiveEvent]:
        """The events not sent yet, oldest first (at most ``BATCH``)."""
        now = time.monotonic() if now is None else now
        query = self._query
        if query is None:  # built once per stream (one built per poll leaves cycles)
            query = self._query = (
                select(OutboxEvent.id, OutboxEvent.topic, Case.id, Case.reported_at)
                .join(Case, Case.id == OutboxEvent.aggregate_id.cast(Case.id.type))
                .where(
                    OutboxEvent.id > bindparam("floor"),
                    OutboxEvent.aggregate_type == "case",
                    OutboxEvent.topic.in_(TOPICS),
                    queries.visible(self.principal),
                )
                .order_by(OutboxEvent.id)
                .limit(bindparam("limit"))
            )
        params = {"floor": self.floor, "limit": BATCH + len(self.sent)}
        rows = (await session.execute(query, params)).all()
        newest = (await session.execute(_NEWEST)).scalar_one_or_none() or self.floor
        out = [
            LiveEvent(int(i), int(case_id), code_for(int(case_id), at), topic.rsplit(".", 1)[-1])
            for i, topic, case_id, at in rows
            if i not in self.sent
        ][:BATCH]
        self.sent.update(e.id for e in out)
        # this poll looked at everything up to the newest id (the rest were not this
        # user's), or, with more waiting, up to the last one sent
        self.marks.append((now, out[-1].id if len(out) == BATCH else int(newest)))
        while self.marks and now - self.marks[0][0] >= LOOKBACK:
            self.floor = max(self.floor, self.marks.popleft()[1])
        if len(self.sent) > REMEMBERED:
            self.floor = max(self.floor, sorted(self.sent)[-REMEMBERED])
        self.sent = {i for i in self.sent if i > self.floor}
        return out


async def start(
    session: AsyncSession, principal: Principal, last_event_id: int = 0, now: float | None = None
) -> Feed:
    """A feed for a page that has just been drawn: what is visible already counts as seen,
    and an event of the last ``LOOKBACK`` seconds that becomes visible later is sent (a
    stream that began at the newest id would skip it, as the page reloads on every event
    and opens a new stream). A reconnecting browser's ``Last-Event-ID`` is where it got to;
    it is never taken past the newest id (a stale or forged one would silence the feed)."""
    newest = int((await session.execute(_NEWEST)).scalar_one_or_none() or 0)
    if last_event_id > 0:
        return Feed(principal, min(last_event_id, newest))
    since = utcnow() - timedelta(seconds=LOOKBACK)
    floor = newest
    for event_id, created_at in await session.execute(_RECENT):
        if as_utc(created_at) < since:
            break
        floor = int(event_id) - 1
    feed = Feed(principal, floor)
    while len(await feed.poll(session, now)) == BATCH:  # seen, not sent
        pass
    return feed
