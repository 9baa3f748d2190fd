"""One intake for every channel (一口受理): check the channel's fields, return the existing case
for a repeated request, then locate, classify, find duplicates, propose departments, and
persist the case with its first timeline entry, its audit record and its event, in one
transaction.

Suggestions are only suggestions: the centre confirms or changes the category, the place
and the departments when it files and dispatches the case.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.basedata.address_match import get_index, nearest_address
from yiwang.basedata.locator import get_locator
from yiwang.core.audit import service as audit
from yiwang.core.auth.principal import Principal
from yiwang.core.db import canonical_json
from yiwang.core.errors import Conflict, PermissionDenied, ValidationFailed
from yiwang.core.events import service as events
from yiwang.core.security.crypto import sm3_hex
from yiwang.core.security.personal import PHONE_RE, PersonalData
from yiwang.core.settings import Settings
from yiwang.core.timeutil import as_utc, utcnow
from yiwang.geo.cells import cell_of, disk_ranges
from yiwang.geo.coords import haversine_m
from yiwang.linkage import categories, channels, facts, suggest
from yiwang.linkage.models import Case, CaseStep, Category
from yiwang.linkage.status import OPEN

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
    from yiwang.core.timeutil import LOCAL_TZ

    return f"{as_utc(case.reported_at).astimezone(LOCAL_TZ):%Y%m%d}{case.id:06d}"


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
        if not bool(locator.in_district([lon], [lat])[0]):
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
    ranges = disk_ranges(lon, lat, DUPLICATE_RADIUS_M)
    rows = (
        await session.execute(
            select(Case.id, Case.lon, Case.lat, Case.title, Case.description, Case.reported_at)
            .where(
                Case.category_id == category_id,
                Case.status.in_(OPEN),
                Case.reported_at >= at - DUPLICATE_WINDOW,
                or_(*(Case.h3.between(lo, hi) for lo, hi in ranges)),
            )
            .limit(200)
        )
    ).all()
    mine = shingles(text)
    found = []
    for row in rows:
        if row.id == exclude or row.lon is None:
            continue
        distance = float(haversine_m(lon, lat, row.lon, row.lat))
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
    existing = await _existing(session, data, key)
    if existing is not None:
        return await _repeat(session, actor, existing, key)

    place = await locate(session, data.lon, data.lat, data.address_text)
    text = f"{data.title} {data.description} {data.address_text}".strip()
    book = await suggest.get_book(session)
    category: Category | None = None
    suggestion: dict[str, Any] = {}
    hint = data.category or channel.default_category
    if hint:
        category = await categories.get_by_code(session, hint)
        suggestion["category"] = {"code": category.code, "source": "channel", "confidence": 1.0}
    else:
        guess = (await suggest.get_classifier(session, book)).suggest(text)
        if guess is not None:
            category = await session.get(Category, book.ids[guess.code])
            suggestion["category"] = {
                "code": guess.code,
                "source": guess.source,
                "confidence": round(guess.confidence, 3),
            }
    reported = as_utc(data.reported_at) if data.reported_at else utcnow()
    district = await categories.district_id(session)
    urgency = data.urgency
    if category is not None:
        terms = await categories.terms(session, category.id)
        urgency = urgency or terms.urgency
        route = await categories.route(session, category.id, place.town_id, district)
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
    case = Case(
        channel=channel.name,
        source_ref=data.source_ref,
        idempotency_key=key,
        status="accepted",
        title=data.title or data.description[:40],
        description=data.description,
        address_text=data.address_text or place.name,
        lon=place.lon,
        lat=place.lat,
        h3=cell_of(place.lon, place.lat)
        if place.lon is not None and place.lat is not None
        else None,
        address_id=place.address_id,
        grid_id=place.grid_id,
        town_id=place.town_id,
        area_id=place.grid_id or place.town_id or district,
        category_id=category.id if category else None,
        urgency=urgency or "normal",
        suggestions=suggestion,
        details=data.details,
        reporter_name=pd.seal("linkage_case", "reporter_name", data.reporter_name)
        if data.reporter_name
        else None,
        reporter_phone=pd.seal("linkage_case", "reporter_phone", data.reporter_phone)
        if data.reporter_phone
        else None,
        reporter_phone_hash=pd.id_hash(data.reporter_phone) if data.reporter_phone else None,
        reporter_token_hash=sm3_hex(token) if token else None,
        reported_at=reported,
    )
    try:
        async with session.begin_nested():
            session.add(case)
            await session.flush()
    except IntegrityError:
        # the same key or reference arrived at the same moment: the other request won
        existing = await _existing(session, data, key)
        if existing is None:
            raise
        return await _repeat(session, actor, existing, key)
    await facts.sync(session, case)
    session.add(
        CaseStep(
            case_id=case.id,
            action="accept",
            from_status=None,
            to_status="accepted",
            actor_id=actor.user_id,
            actor_name=actor.username,
            actor_org_id=actor.org_id,
            note="",
            data={"channel": channel.name},
        )
    )
    await audit.record(
        session,
        actor,
        "case.create",
        "case",
        case.id,
        details={"channel": channel.name, "source_ref": data.source_ref},
    )
    await events.publish(
        session,
        "linkage.case.accepted",
        "case",
        case.id,
        {
            "code": case_code(case),
            "channel": channel.name,
            "category": category.code if category else None,
            "area_id": case.area_id,
        },
        actor=actor,
    )
    return Intake(case, True, token)


async def count_open(session: AsyncSession) -> int:
    return int(
        (await session.execute(select(func.count()).where(Case.status.in_(OPEN)))).scalar_one()
    )
