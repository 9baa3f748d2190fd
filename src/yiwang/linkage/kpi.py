"""Case KPIs (考核指标), per department, town, grid, category, channel or period.

The cohort is the cases taken in within the period (``reported_at`` in [start, end)), in the
caller's data scope. With ``at`` the moment the figures are taken (default: now, or the
period's end if that is earlier):

- 受理量 ``intake``: cases taken in.
- 立案数 ``filed``: of them, filed (``filed_at`` set). 立案率 = filed / (intake − merged):
  a duplicate merged into another case is counted with its parent.
- 应结案数 ``due``: filed cases whose deadline has passed by ``at``, or which are closed by
  ``at``.
- 结案数 ``closed``: due cases that are closed. 结案率 = closed / due.
- 按期结案数 ``closed_on_time``: closed cases that were never overdue. 按期结案率 =
  closed_on_time / due.
- 综合处置率 = (closed + rejected + merged) / intake: the share of cases that reached an end
  (closed, not filed with a reason given, or closed with the case they duplicated).
- 返工率 = cases reopened at least once / closed.
- 延期率 = cases with at least one approved extension / dispatched.
- 满意率 = (satisfied + basic) / rated.
- average handling time ``avg_handling_hours``: natural hours from dispatch to the moment the
  departments finished, over the cases they finished.

A rate whose denominator is zero is ``None`` (shown as "—"), never 0 or 100 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.auth.principal import Principal
from yiwang.core.errors import ValidationFailed
from yiwang.core.orgs.models import OrgNode
from yiwang.core.timeutil import as_utc, utcnow
from yiwang.linkage.models import CaseFact as Case
from yiwang.linkage.models import CaseTask, Category
from yiwang.linkage.status import CLOSED, MERGED, REJECTED

AREA_KINDS = {"district", "town", "community", "grid"}
GROUPS = ("department", "town", "grid", "category", "channel", "day", "week", "month", "year")
MAX_DAYS = 3 * 366


@dataclass
class Row:
    key: str
    label: str
    intake: int = 0
    filed: int = 0
    rejected: int = 0
    merged: int = 0
    dispatched: int = 0
    due: int = 0
    closed: int = 0
    closed_on_time: int = 0
    reopened: int = 0
    extended: int = 0
    rated: int = 0
    satisfied: int = 0
    handled: int = 0
    handling_hours: float = 0.0
    rates: dict[str, float | None] = field(default_factory=dict)

    def finish(self) -> Row:
        def rate(num: float, den: float) -> float | None:
            return round(num / den, 4) if den else None

        self.rates = {
            "filing_rate": rate(self.filed, self.intake - self.merged),
            "closing_rate": rate(self.closed, self.due),
            "on_time_rate": rate(self.closed_on_time, self.due),
            "disposal_rate": rate(self.closed + self.rejected + self.merged, self.intake),
            "rework_rate": rate(self.reopened, self.closed),
            "extension_rate": rate(self.extended, self.dispatched),
            "satisfaction_rate": rate(self.satisfied, self.rated),
            "avg_handling_hours": rate(self.handling_hours, self.handled),
        }
        return self

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("handling_hours")
        return out


def _bucket(dialect: str, grain: str) -> Any:
    """The local day, ISO week, month or year a case was reported in (from its local day)."""
    if dialect == "sqlite":
        if grain == "week":
            return func.strftime("%Y-W%W", Case.day)
        return func.substr(Case.day, 1, {"day": 10, "month": 7, "year": 4}[grain])
    fmt = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM", "year": "YYYY"}[grain]
    return func.to_char(Case.day, fmt)


async def _scope(session: AsyncSession, principal: Principal) -> ColumnElement[bool]:
    """``queries.visible`` for the facts, in the form each engine runs fast: areas by their
    org, and the cases a department has a part in by a semi-join on the tasks (towns have
    parts only in their own area, which the area already covers)."""
    scope = principal.scope
    if scope.everything:
        return true()
    kinds = set(
        (await session.execute(select(OrgNode.kind).where(OrgNode.path.in_(scope.paths))))
        .scalars()
        .all()
    )
    area = Case.area_id.in_(scope.org_ids())
    if kinds <= AREA_KINDS:
        return area
    tasks = select(CaseTask.case_id).where(scope.condition(CaseTask.org_id))
    return or_(area, Case.case_id.in_(tasks))


def _hours(dialect: str, start: Any, end: Any) -> Any:
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 24.0
    return func.extract("epoch", end - start) / 3600.0


def _count(condition: Any) -> Any:
    # an aggregate FILTER is much cheaper than SUM(CASE ...) on both engines
    return func.count().filter(condition)


async def compute(
    session: AsyncSession,
    principal: Principal,
    start: datetime,
    end: datetime,
    group: str,
    *,
    at: datetime | None = None,
) -> tuple[list[Row], Row]:
    """The figures per group, and the total over the whole cohort."""
    principal.require("linkage.read")
    if group not in GROUPS:
        raise ValidationFailed(
            "Group by one of: {groups}.", field="group", params={"groups": ", ".join(GROUPS)}
        )
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise ValidationFailed("The period ends after it starts.", field="end")
    if (end - start).days > MAX_DAYS:
        raise ValidationFailed(
            "At most {days} days at once.", field="end", params={"days": MAX_DAYS}
        )
    at = as_utc(at) if at else min(utcnow(), end)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # a generic plan of this prepared statement (after five runs) scans the whole year
        # through the index; plan for the actual period every time
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    key: Any = {
        "department": Case.lead_org_id,
        "town": Case.town_id,
        "grid": Case.grid_id,
        "category": Case.category_id,
        "channel": Case.channel,
    }.get(group)
    if key is None:
        key = _bucket(dialect, group)
    due = and_(
        Case.filed_at.is_not(None),
        or_(Case.due_at <= at, and_(Case.closed_at.is_not(None), Case.closed_at <= at)),
        Case.status != MERGED,
    )
    closed = and_(due, Case.status == CLOSED, Case.closed_at <= at)
    handled = and_(Case.handled_at.is_not(None), Case.dispatched_at.is_not(None))
    stmt = (
        select(
            key.label("key"),
            func.count().label("intake"),
            _count(Case.filed_at.is_not(None)).label("filed"),
            _count(Case.status == REJECTED).label("rejected"),
            _count(Case.status == MERGED).label("merged"),
            _count(Case.dispatched_at.is_not(None)).label("dispatched"),
            _count(due).label("due"),
            _count(closed).label("closed"),
            _count(and_(closed, Case.overdue.is_(False))).label("closed_on_time"),
            _count(and_(closed, Case.reopened > 0)).label("reopened"),
            _count(and_(Case.dispatched_at.is_not(None), Case.extensions > 0)).label("extended"),
            _count(Case.rating.is_not(None)).label("rated"),
            _count(Case.rating.in_(("satisfied", "basic"))).label("satisfied"),
            _count(handled).label("handled"),
            func.coalesce(
                func.sum(_hours(dialect, Case.dispatched_at, Case.handled_at)).filter(handled),
                0.0,
            ).label("handling_hours"),
        )
        .where(
            Case.reported_at >= start,
            Case.reported_at < end,
            await _scope(session, principal),
        )
        .group_by(key)
        .order_by(key)
    )
    rows = (await session.execute(stmt)).all()
    labels = await _labels(session, group, [r.key for r in rows])
    out = []
    total = Row("", "")
    for r in rows:
        values = {k: int(getattr(r, k) or 0) for k in (
            "intake", "filed", "rejected", "merged", "dispatched", "due", "closed",
            "closed_on_time", "reopened", "extended", "rated", "satisfied", "handled",
        )}  # fmt: skip
        hours = float(r.handling_hours or 0.0)
        key_text = "" if r.key is None else str(r.key)
        row = Row(key_text, labels.get(key_text, key_text or "—"), handling_hours=hours)
        for k, v in values.items():
            setattr(row, k, v)
            setattr(total, k, getattr(total, k) + v)
        out.append(row.finish())
        total.handling_hours += hours
    return out, total.finish()


async def _labels(session: AsyncSession, group: str, keys: list[Any]) -> dict[str, str]:
    ids = [k for k in keys if isinstance(k, int)]
    if group in ("department", "town", "grid") and ids:
        rows = await session.execute(select(OrgNode.id, OrgNode.name).where(OrgNode.id.in_(ids)))
        return {str(i): n for i, n in rows}
    if group == "category" and ids:
        found = await session.execute(
            select(Category.id, Category.code, Category.name).where(Category.id.in_(ids))
        )
        return {str(i): f"{c} {n}" for i, c, n in found}
    if group == "channel":
        from yiwang.linkage.channels import CHANNELS

        return {k: CHANNELS[k].title for k in keys if k in CHANNELS}
    return {}
