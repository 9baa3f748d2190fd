"""One intake for every channel (一口受理): check the channel's fields, return the existing case
for a repeated request, then locate, classify, find duplicates, propose departments, and
persist the case with its first timeline entry, its audit record and its event, in one
transaction.

Suggestions are only suggestions: the centre confirms or changes the category, the place
and the departments when it files and dispatches the case.
"""

from __future__ import annotations

import functools
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import h3
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.address_match import get_index, nearest_address
from yiwang.basedata.locator import get_locator
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import AnySelect, allocate_ids, canonical_json, fast_rows
from yiwang.core.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.security.crypto import sm3_hex
from yiwang.core.security.personal import PHONE_RE, PersonalData
from yiwang.core.settings import Settings
from yiwang.core.timeutil import as_utc, utcnow
from yiwang.geo.cells import cell_of, descendant_range, merge_ranges
from yiwang.geo.coords import distance_m
from yiwang.linkage import channels, facts, suggest
from yiwang.linkage.models import Case, CaseStep
from yiwang.linkage.status import OPEN

#: tables, not classes, for plain-row inserts (the ORM's bulk path costs per row)
CASES: Table = Case.__table__  # type: ignore[assignment]
STEPS: Table = CaseStep.__table__  # type: ignore[assignment]
MAX_DESCRIPTION = 2000
MAX_DETAILS_BYTES = 8192
#: duplicates: open cases of the same category within this distance (FixMyStreet's radius)
DUPLICATE_RADIUS_M = 250.0
#: this near and this recent, the same category is likely the same problem
DUPLICATE_NEAR_M = 100.0
DUPLICATE_NEAR_AGE = timedelta(hours=48)
#: farther (within the radius) or older (within the window), the texts must agree as well
DUPLICATE_WINDOW = timedelta(days=7)
DUPLICATE_MIN_SIMILARITY = 0.3


@dataclass
class CaseIn:
    channel: str
    description: str
    title: str = ""
    address_text: str = ""
    lon: float | None = None
    lat: float | None = None
    #: a category code the sender knows (machine channels); else one is suggested
    category: str | None = None
    urgency: str | None = None
    source_ref: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reported_at: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Intake:
    case: Case
    #: False when the request repeated an earlier one (same key or source reference)
    created: bool
    #: the reporter's secret for tracking, rating and reopening (only when created)
    reporter_token: str | None = None


def case_code(case: Case) -> str:
    """The tracking code: the local report date and the case number."""
    return code_for(case.id, case.reported_at)


def code_for(case_id: int, reported_at: datetime) -> str:
    """``case_code`` from the two columns it is made of."""
    from yiwang.core.timeutil import LOCAL_TZ

    return f"{as_utc(reported_at).astimezone(LOCAL_TZ):%Y%m%d}{case_id:06d}"


def case_id_from_code(code: str) -> int | None:
    code = code.strip()
    if len(code) < 14 or not code.isdigit():
        return None
    return int(code[8:])


def _check(data: CaseIn) -> channels.Channel:
    channel = channels.get(data.channel)
    if channel is None:
        raise ValidationFailed(
            "Unknown channel '{channel}'.", field="channel", params={"channel": data.channel}
        )
    data.description = (data.description or "").strip()
    data.title = (data.title or "").strip()
    data.address_text = (data.address_text or "").strip()
    if not data.description:
        raise ValidationFailed("Describe the problem.", field="description")
    if len(data.description) > MAX_DESCRIPTION:
        raise ValidationFailed(
            "At most {max} characters.", field="description", params={"max": MAX_DESCRIPTION}
        )
    if len(data.title) > 200:
        raise ValidationFailed("At most {max} characters.", field="title", params={"max": 200})
    if len(data.address_text) > 200:
        raise ValidationFailed(
            "At most {max} characters.", field="address_text", params={"max": 200}
        )
    if (data.lon is None) != (data.lat is None):
        raise ValidationFailed("Give both longitude and latitude, or neither.", field="lat")
    if data.lon is not None and data.lat is not None:
        if not (-180 <= data.lon <= 180):
            raise ValidationFailed("The longitude is not valid.", field="lon")
        if not (-90 <= data.lat <= 90):
            raise ValidationFailed("The latitude is not valid.", field="lat")
    if data.reporter_phone is not None:
        data.reporter_phone = data.reporter_phone.strip() or None
        if data.reporter_phone and not PHONE_RE.match(data.reporter_phone):
            raise ValidationFailed("The phone number is not valid.", field="reporter_phone")
    if data.reporter_name is not None:
        data.reporter_name = data.reporter_name.strip()[:64] or None
    if data.source_ref is not None:
        data.source_ref = data.source_ref.strip() or None
        if data.source_ref and len(data.source_ref) > 64:
            raise ValidationFailed(
                "At most {max} characters.", field="source_ref", params={"max": 64}
            )
    if data.urgency is not None and data.urgency not in ("normal", "urgent"):
        raise ValidationFailed("Urgency is 'normal' or 'urgent'.", field="urgency")
    if not isinstance(data.details, dict):
        raise ValidationFailed("Details are an object.", field="details")
    if len(canonical_json(data.details).encode()) > MAX_DETAILS_BYTES:
        raise ValidationFailed(
            "At most {max} bytes.", field="details", params={"max": MAX_DETAILS_BYTES}
        )
    for need in channel.required:
        if need == "place":
            if data.lon is None and not data.address_text:
                raise ValidationFailed(
                    "Give the address or the position of the problem.", field="address_text"
                )
        elif need == "position":
            if data.lon is None:
                raise ValidationFailed("This channel needs a position.", field="lon")
        elif not getattr(data, need):
            raise ValidationFailed("This channel needs this field.", field=need)
    if data.reported_at is not None and as_utc(data.reported_at) > utcnow() + timedelta(minutes=5):
        raise ValidationFailed("The report time is in the future.", field="reported_at")
    return channel


@dataclass
class Located:
    lon: float | None
    lat: float | None
    address_id: int | None
    grid_id: int | None
    town_id: int | None
    #: "position", "address", or "none" when the centre must place the case itself
    source: str
    score: float = 0.0
    name: str = ""


async def locate(
    session: AsyncSession, lon: float | None, lat: float | None, address_text: str
) -> Located:
    """A position goes to its grid and the nearest standard address; an address text goes
    to its standard address (and that address's position and grid)."""
    locator = await get_locator(session)
    if lon is not None and lat is not None:
        if not locator.contains(lon, lat):
            raise ValidationFailed("The place is outside the district.", field="lon")
        place = locator.locate(lon, lat)
        near = await nearest_address(session, lon, lat, max_m=100.0)
        return Located(
            lon,
            lat,
            near.address_id if near else None,
            place.grid_id,
            place.town_id,
            "position",
            1.0,
            near.name if near else "",
        )
    if address_text:
        index = await get_index(session)
        match = index.match(address_text)
        if match is not None and match.kind in ("address", "road", "area"):
            place = locator.locate(match.lon, match.lat)
            return Located(
                match.lon,
                match.lat,
                match.id if match.kind == "address" else None,
                match.grid_id if match.kind == "address" else place.grid_id,
                place.town_id,
                "address",
                match.score,
                match.name,
            )
    return Located(None, None, None, None, None, "none")


async def _existing(session: AsyncSession, data: CaseIn, key: str | None) -> Case | None:
    conditions = []
    if key:
        conditions.append(Case.idempotency_key == key)
    if data.source_ref:
        conditions.append((Case.channel == data.channel) & (Case.source_ref == data.source_ref))
    if not conditions:
        return None
    return (await session.execute(select(Case).where(or_(*conditions)))).scalars().first()


async def _repeat(session: AsyncSession, actor: Principal, case: Case, key: str | None) -> Intake:
    """The case a repeated request made. A source reference someone else used answers only
    to whoever may see that case: guessing references never reveals other people's cases."""
    from yiwang.linkage.queries import visible

    if key is None or case.idempotency_key != key:
        seen = (
            await session.execute(select(Case.id).where(Case.id == case.id, visible(actor)))
        ).first()
        if seen is None:
            raise Conflict(
                "A case with this source reference was taken in already.", field="source_ref"
            )
    return Intake(case, False)


_NOT_TEXT = re.compile(r"[\W_\d]+")


def shingles(text: str) -> set[str]:
    """The text's character pairs (Chinese words share characters: 井盖 and 窨井盖)."""
    text = _NOT_TEXT.sub("", text)
    return {text[i : i + 2] for i in range(len(text) - 1)}


def similarity(a: set[str], b: set[str]) -> float:
    """Shared pairs over all pairs (Jaccard)."""
    return len(a & b) / len(a | b) if a and b else 0.0


def likely_duplicate(distance_m: float, age: timedelta, text_similarity: float) -> bool:
    """Our rule for an open case of the same category: near and recent, or within the radius
    and the window and saying the same thing. FixMyStreet's rule is the radius alone; see
    ``bench/case_quality.py`` for both measured on the same reports."""
    if distance_m > DUPLICATE_RADIUS_M or age > DUPLICATE_WINDOW:
        return False
    near = distance_m <= DUPLICATE_NEAR_M and age <= DUPLICATE_NEAR_AGE
    return near or text_similarity >= DUPLICATE_MIN_SIMILARITY


def duplicate_rank(distance_m: float, age: timedelta, text_similarity: float) -> float:
    """Higher is likelier: closeness in space, in time and in words, equally weighted."""
    hours = age.total_seconds() / 3600
    return text_similarity + (1 - distance_m / DUPLICATE_RADIUS_M) + (1 - min(hours, 168.0) / 168.0)


#: the coarse cells searched for duplicates: a point's cell at this resolution (about 920 m
#: across) and its six neighbours reach far beyond the radius whichever way it lies
_NEAR_RES = 8


def _near_ranges(lon: float, lat: float) -> list[tuple[int, int]]:
    return _disk_ranges(h3.latlng_to_cell(lat, lon, _NEAR_RES))


@functools.lru_cache(maxsize=4096)
def _disk_ranges(centre: str) -> list[tuple[int, int]]:
    return merge_ranges(descendant_range(c) for c in h3.grid_disk(centre, 1))


@functools.cache
def _duplicates_query(ranges: int) -> AnySelect:
    """One statement per number of ranges (at most seven), built once: intake runs it for
    every report, and building and compiling a query costs more than running it.

    One SELECT per range, joined by UNION ALL (the ranges do not overlap): each is one seek
    in the (category, H3) index whatever the plan. Written as one SELECT with OR, SQLite's
    planner read all the category's cases, and so did PostgreSQL's generic plan for the
    prepared statement (it kept only the category as the index condition). The statuses
    are written into the statement (a constant list, not a parameter to expand each time)."""
    category: BindParameter[int] = bindparam("category_id")
    statuses: list[ColumnElement[str]] = [literal_column(f"'{s}'") for s in sorted(OPEN)]

    def near(i: int) -> AnySelect:
        return select(
            Case.id, Case.lon, Case.lat, Case.title, Case.description, Case.reported_at
        ).where(
            Case.category_id == category,
            Case.h3.between(bindparam(f"lo{i}"), bindparam(f"hi{i}")),
            Case.status.in_(statuses),
            Case.reported_at >= bindparam("since"),
            Case.lon.between(bindparam("west"), bindparam("east")),
            Case.lat.between(bindparam("south"), bindparam("north")),
        )

    if ranges == 1:
        return near(0).limit(200)
    return union_all(*(near(i) for i in range(ranges))).limit(200)


async def duplicates(
    session: AsyncSession,
    category_id: int | None,
    lon: float | None,
    lat: float | None,
    text: str,
    at: datetime,
    *,
    exclude: int | None = None,
) -> list[dict[str, Any]]:
    """Open cases of the same category near the place and recent, whose words overlap (or
    at the very same spot), best first."""
    if category_id is None or lon is None or lat is None:
        return []
    ranges = _near_ranges(lon, lat)
    dlat = DUPLICATE_RADIUS_M / 111_000 * 1.01
    dlon = dlat / max(0.1, math.cos(math.radians(lat)))
    params: dict[str, Any] = {
        "category_id": category_id, "since": at - DUPLICATE_WINDOW,
        "west": lon - dlon, "east": lon + dlon, "south": lat - dlat, "north": lat + dlat,
    }  # fmt: skip
    for i, (lo, hi) in enumerate(ranges):
        params[f"lo{i}"], params[f"hi{i}"] = lo, hi
    rows = await fast_rows(session, _duplicates_query(len(ranges)), params)  # every report
    mine = shingles(text)
    found = []
    for row in rows:
        if row.id == exclude or row.lon is None:
            continue
        distance = distance_m(lon, lat, row.lon, row.lat)
        if distance > DUPLICATE_RADIUS_M:
            continue
        sim = similarity(mine, shingles(f"{row.title} {row.description}"))
        age = abs(at - row.reported_at)
        if likely_duplicate(distance, age, sim):
            found.append(
                {
                    "case_id": row.id,
                    "distance_m": round(distance, 1),
                    "similarity": round(sim, 3),
                    "rank": round(duplicate_rank(distance, age, sim), 3),
                }
            )
    found.sort(key=lambda d: -d["rank"])
    return found[:5]


@dataclass
class Prepared:
    """A request checked, located, classified, compared and routed: what ``write`` stores."""

    actor: Principal
    data: CaseIn
    channel: channels.Channel
    key: str | None
    row: dict[str, Any]
    category_code: str | None
    token: str | None


async def prepare(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    data: CaseIn,
    *,
    public: bool = False,
    check_repeat: bool = True,
) -> Prepared | Intake:
    """Everything intake decides before it writes, from reads alone (on SQLite a read-only
    session that never waits for writers). A repeated request (same key or source
    reference) answers with its case at once; ``check_repeat=False`` leaves that to
    ``write``, which looks for the whole batch at once (the group-commit path)."""
    channel = _check(data)
    if public:
        if channel.name not in ("snap", "tip"):
            raise PermissionDenied(params={"permission": "linkage.intake"})
    elif channel.name == "patrol":
        actor.require("linkage.patrol")  # a grid worker's own report from the street
    else:
        actor.require("linkage.intake")
    key = None
    if data.idempotency_key:
        if len(data.idempotency_key) > 100:
            raise ValidationFailed(
                "At most {max} characters.", field="idempotency_key", params={"max": 100}
            )
        owner = actor.user_id if actor.user_id is not None else actor.username
        key = f"{owner}:{data.idempotency_key}"
    existing = await _existing(session, data, key) if check_repeat else None
    if existing is not None:
        return await _repeat(session, actor, existing, key)

    place = await locate(session, data.lon, data.lat, data.address_text)
    text = f"{data.title} {data.description} {data.address_text}".strip()
    book = await suggest.get_book(session)
    if book.district_id is None:
        raise ValidationFailed("The district is not set up yet.", field="channel")
    category: suggest.CategoryInfo | None = None
    suggestion: dict[str, Any] = {}
    hint = data.category or channel.default_category
    if hint:
        category = book.by_code.get(hint)
        if category is None:
            raise ValidationFailed(
                "No category with code '{code}'.", field="category", params={"code": hint}
            )
        suggestion["category"] = {"code": category.code, "source": "channel", "confidence": 1.0}
    else:
        guess = book.classifier.suggest(text)
        if guess is not None:
            category = book.categories[book.ids[guess.code]]
            suggestion["category"] = {
                "code": guess.code,
                "source": guess.source,
                "confidence": round(guess.confidence, 3),
            }
    reported = as_utc(data.reported_at) if data.reported_at else utcnow()
    urgency = data.urgency
    if category is not None:
        urgency = urgency or book.terms(category.id).urgency
        route = book.route(category.id, place.town_id)
        suggestion["route"] = {
            "lead_id": route.lead_id,
            "assisting": list(route.assisting),
            "source": route.source,
        }
    suggestion["place"] = {
        "source": place.source,
        "score": round(place.score, 3),
        "address_id": place.address_id,
        "name": place.name,
    }
    suggestion["duplicates"] = await duplicates(
        session, category.id if category else None, place.lon, place.lat, text, reported
    )
    pd = PersonalData(settings)
    token = secrets.token_urlsafe(18) if not channel.machine else None
    row: dict[str, Any] = {
        "channel": channel.name,
        "source_ref": data.source_ref,
        "idempotency_key": key,
        "status": "accepted",
        "title": data.title or data.description[:40],
        "description": data.description,
        "address_text": data.address_text or place.name,
        "lon": place.lon,
        "lat": place.lat,
        "h3": cell_of(place.lon, place.lat)
        if place.lon is not None and place.lat is not None
        else None,
        "address_id": place.address_id,
        "grid_id": place.grid_id,
        "town_id": place.town_id,
        "area_id": place.grid_id or place.town_id or book.district_id,
        "category_id": category.id if category else None,
        "urgency": urgency or "normal",
        "suggestions": suggestion,
        "details": data.details,
        "reporter_name": pd.seal("linkage_case", "reporter_name", data.reporter_name)
        if data.reporter_name
        else None,
        "reporter_phone": pd.seal("linkage_case", "reporter_phone", data.reporter_phone)
        if data.reporter_phone
        else None,
        "reporter_phone_hash": pd.id_hash(data.reporter_phone) if data.reporter_phone else None,
        "reporter_token_hash": sm3_hex(token) if token else None,
        "reported_at": reported,
    }
    return Prepared(actor, data, channel, key, row, category.code if category else None, token)


async def create(
    session: AsyncSession,
    actor: Principal,
    settings: Settings,
    data: CaseIn,
    *,
    public: bool = False,
) -> Intake:
    """Take in a request. ``public`` is the citizens' own intake (snap-and-report, tips):
    the caller has verified the reporter's phone; otherwise the actor needs linkage.intake."""
    prepared = await prepare(session, actor, settings, data, public=public)
    if isinstance(prepared, Intake):
        return prepared
    result = (await write(session, [prepared]))[0]
    if isinstance(result, BaseException):
        raise result
    return result


async def write(
    session: AsyncSession, items: list[Prepared], *, careful: bool = True
) -> list[Intake | DomainError]:
    """Store prepared requests in the caller's transaction, a statement per table for all
    of them (group commit: ``yiwang.linkage.intake_queue``). A request repeated since it
    was prepared, by another in the batch or by one already stored, gets that case; a
    refusal of one request (a source reference someone else used) is its result alone.

    ``careful``: a request another process stored since it was looked for (a unique key
    collides: PostgreSQL only, where writers overlap) gets that case, each insert retried
    in a savepoint. Without it the collision is raised and the transaction is lost: for a
    caller that owns the transaction and writes the requests again carefully (the queue),
    which saves the savepoint's two round trips on every batch that does not collide."""
    out: list[Intake | DomainError | None] = [None] * len(items)
    fresh: list[int] = []
    taken: dict[tuple[str, str], int] = {}
    deferred: dict[int, int] = {}
    stored = await _existing_many(session, items)
    for i, p in enumerate(items):
        names = _names(p)
        old = next((stored[n] for n in names if n in stored), None)
        if old is not None:
            out[i] = await _settle(session, p, old)
            continue
        first = next((taken[n] for n in names if n in taken), None)
        if first is not None:
            deferred[i] = first  # the same request twice in one batch: the first answers
            continue
        for n in names:
            taken[n] = i
        fresh.append(i)
    cases = await _insert(session, [items[i] for i in fresh], careful)
    made: dict[int, Case] = {}
    for i, case in zip(fresh, cases, strict=True):
        if isinstance(case, Case):
            made[i] = case
            out[i] = Intake(case, True, items[i].token)
        else:  # another process stored the same request in the meantime
            out[i] = await _settle(session, items[i], case[1])
    for i, first in deferred.items():
        prior = out[first]
        out[i] = (
            await _settle(session, items[i], prior.case) if isinstance(prior, Intake) else prior
        )
    if made:
        await _record(session, [(items[i], c) for i, c in made.items()])
    done = [r for r in out if r is not None]
    assert len(done) == len(items)
    return done


def _names(p: Prepared) -> list[tuple[str, str]]:
    names = []
    if p.key:
        names.append(("key", p.key))
    if p.data.source_ref:
        names.append((p.channel.name, p.data.source_ref))
    return names


@functools.cache
def _existing_query(channels: int) -> Select[Case]:
    """The cases a batch may repeat: by idempotency key (``keys``), or by source reference
    (``refs0``...) within each of ``channels`` channels (``ch0``...), so that each term
    uses the (channel, source_ref) unique index. Built once per number of channels: a
    statement built per batch leaves reference cycles among its parameters that only the
    garbage collector frees."""
    conditions: list[ColumnElement[bool]] = [
        Case.idempotency_key.in_(bindparam("keys", expanding=True))
    ]
    conditions.extend(
        (Case.channel == bindparam(f"ch{n}"))
        & Case.source_ref.in_(bindparam(f"refs{n}", expanding=True))
        for n in range(channels)
    )
    return select(Case).where(or_(*conditions))


async def _existing_many(
    session: AsyncSession, items: list[Prepared]
) -> dict[tuple[str, str], Case]:
    keys = [p.key for p in items if p.key]
    refs: dict[str, list[str]] = {}
    for p in items:
        if p.data.source_ref:
            refs.setdefault(p.channel.name, []).append(p.data.source_ref)
    if not keys and not refs:
        return {}
    params: dict[str, Any] = {"keys": keys}
    for n, (ch, rs) in enumerate(refs.items()):
        params[f"ch{n}"], params[f"refs{n}"] = ch, rs
    found: dict[tuple[str, str], Case] = {}
    rows = await session.execute(_existing_query(len(refs)), params)
    for case in rows.scalars():
        if case.idempotency_key:
            found[("key", case.idempotency_key)] = case
        if case.source_ref:
            found[(case.channel, case.source_ref)] = case
    return found


async def _settle(session: AsyncSession, p: Prepared, case: Case) -> Intake | DomainError:
    try:
        return await _repeat(session, p.actor, case, p.key)
    except DomainError as exc:
        return exc


def _defaults() -> dict[str, Any]:
    """The Python-side defaults of the case table's columns (a case built for an INSERT
    statement, not flushed by the ORM, must carry them itself)."""
    out: dict[str, Any] = {}
    for column in Case.__table__.columns:
        default = column.default
        if default is None or not hasattr(default, "arg"):
            continue
        out[column.key] = default.arg(None) if callable(default.arg) else default.arg
    return out


def _batch_duplicates(rows: list[dict[str, Any]]) -> None:
    """Reports of one batch were prepared before any of them was stored, so their duplicate
    search could not see each other (the typhoon case: many people report the same flood
    at once). Each new case is compared here with the earlier ones of its batch."""
    texts: dict[int, set[str]] = {}
    for k, row in enumerate(rows):
        if row["category_id"] is None or row["lon"] is None:
            continue
        found = []
        for m in range(k):
            other = rows[m]
            if other["category_id"] != row["category_id"] or other["lon"] is None:
                continue
            distance = distance_m(row["lon"], row["lat"], other["lon"], other["lat"])
            if distance > DUPLICATE_RADIUS_M:
                continue
            if m not in texts:
                texts[m] = shingles(f"{other['title']} {other['description']}")
            if k not in texts:
                texts[k] = shingles(f"{row['title']} {row['description']}")
            sim = similarity(texts[k], texts[m])
            age = abs(row["reported_at"] - other["reported_at"])
            if likely_duplicate(distance, age, sim):
                found.append(
                    {
                        "case_id": other["id"],
                        "distance_m": round(distance, 1),
                        "similarity": round(sim, 3),
                        "rank": round(duplicate_rank(distance, age, sim), 3),
                    }
                )
        if found:
            suggestion = dict(row["suggestions"])
            both = [*suggestion.get("duplicates", []), *found]
            both.sort(key=lambda d: -d["rank"])
            suggestion["duplicates"] = both[:5]
            row["suggestions"] = suggestion


async def _insert(
    session: AsyncSession, items: list[Prepared], careful: bool
) -> list[Case | tuple[None, Case]]:
    """The new cases, inserted together with ids taken beforehand (one executemany). If
    another process stored one of them meanwhile (a unique key collides): ``careful``, one
    at a time, each in a savepoint; otherwise the error is raised (``write``)."""
    if not items:
        return []
    ids = await allocate_ids(session, Case.__table__, len(items))
    rows = [{**_defaults(), **p.row, "id": i} for p, i in zip(items, ids, strict=True)]
    _batch_duplicates(rows)
    if not careful:
        await session.execute(insert(CASES), rows)
        return [Case(**row) for row in rows]
    try:
        async with session.begin_nested():
            await session.execute(insert(CASES), rows)
        return [Case(**row) for row in rows]
    except IntegrityError:
        pass
    out: list[Case | tuple[None, Case]] = []
    for p in items:
        case = Case(**p.row)
        try:
            async with session.begin_nested():
                session.add(case)
                await session.flush()
            out.append(case)
        except IntegrityError:
            existing = await _existing(session, p.data, p.key)
            if existing is None:
                raise
            out.append((None, existing))
    return out


async def _record(session: AsyncSession, made: list[tuple[Prepared, Case]]) -> None:
    """Each new case's KPI row, timeline entry, audit record and event."""
    await facts.sync(session, *(c for _, c in made))
    now = utcnow()
    await session.execute(
        insert(STEPS),
        [
            {
                "case_id": case.id,
                "action": "accept",
                "from_status": None,
                "to_status": "accepted",
                "actor_id": p.actor.user_id,
                "actor_name": p.actor.username,
                "actor_org_id": p.actor.org_id,
                "note": "",
                "data": {"channel": p.channel.name},
                "at": now,
            }
            for p, case in made
        ],
    )
    await audit.record_many(
        session,
        [
            audit.Entry(
                p.actor,
                "case.create",
                "case",
                case.id,
                {"channel": p.channel.name, "source_ref": p.data.source_ref},
            )
            for p, case in made
        ],
    )
    await events.publish_many(
        session,
        [
            events.Outgoing(
                "linkage.case.accepted",
                "case",
                case.id,
                {
                    "code": case_code(case),
                    "channel": p.channel.name,
                    "category": p.category_code,
                    "area_id": case.area_id,
                },
                p.actor,
            )
            for p, case in made
        ],
    )


async def count_open(session: AsyncSession) -> int:
    return int(
        (await session.execute(select(func.count()).where(Case.status.in_(OPEN)))).scalar_one()
    )
