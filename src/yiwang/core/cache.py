"""Per-process copies of stored reference data, kept by stamp.

A copy (the area locator, the address index, intake's book...) carries the stamp of the
tables it was built from. ``StampedCopy.get`` answers from it, rechecks the stamp at most
every ``recheck`` seconds (so another process's edit is seen that late), and rebuilds it
when the stamp has changed, one caller at a time: a process starting under load would
otherwise build the same copy once for every request in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

Stamp = tuple[int, ...]


class _HasStamp(Protocol):
    @property
    def stamp(self) -> Stamp: ...


T = TypeVar("T", bound=_HasStamp)


class StampedCopy(Generic[T]):
    def __init__(
        self,
        stamp: Callable[[AsyncSession], Awaitable[Stamp]],
        load: Callable[[AsyncSession, Stamp], Awaitable[T]],
        recheck: float,
    ) -> None:
        self._stamp = stamp
        self._load = load
        self.recheck = recheck
        self.value: T | None = None
        #: when the stamp was last compared (monotonic seconds)
        self.checked = 0.0
        self._lock: asyncio.Lock | None = None

    async def get(self, session: AsyncSession) -> T:
        value = self.value
        if value is not None and time.monotonic() - self.checked < self.recheck:
            return value
        stamp = await self._stamp(session)
        if value is None or value.stamp != stamp:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self.value is None or self.value.stamp != stamp:
                    self.value = await self._load(session, stamp)
                value = self.value
        self.checked = time.monotonic()
        return value

    def forget(self) -> None:
        """Drop the copy (this process changed the tables; tests)."""
        self.value = None
        self.checked = 0.0
        self._lock = None
