"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) at ``/open311/v2/``.

Discovery, services (our active categories), service definitions, POST requests (with an
``api_key``: one of our API tokens whose user may take in cases), GET requests with filters,
one request, and tokens. Every endpoint answers ``.json`` or ``.xml``; errors come as the
spec's list of ``{code, description}``.

Statuses: the spec knows ``open`` and ``closed``; ours map onto them and the detailed status
goes in ``status_notes``. Only cases from public channels (snap-and-report, Open311 apps,
grid patrols) are listed: hotline calls, 110, tips and letters to leaders stay private.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from yiwang.core.auth import tokens
from yiwang.core.errors import DomainError, ValidationFailed
from yiwang.core.timeutil import LOCAL_TZ, as_utc, utcnow
from yiwang.linkage import intake
from yiwang.linkage.models import Case, CaseStep, Category
from yiwang.linkage.status import ENDED, TITLES
from yiwang.web.context import Ctx, any_ctx

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
PUBLIC_CHANNELS = ("snap", "open311", "patrol")
MAX_RESULTS = 1000
FORMATS = {"json": "application/json", "xml": "text/xml"}


class Open311Error(Exception):
    def __init__(self, code: int, description: str) -> None:
        self.code, self.description = code, description


def _split(name: str) -> tuple[str, str]:
    stem, dot, fmt = name.rpartition(".")
    if not dot or fmt not in FORMATS:
        raise Open311Error(404, "Use the .json or .xml form of this resource.")
    return stem, fmt


def _xml(root: str, item: str, rows: list[dict[str, Any]]) -> bytes:
    top = ET.Element(root)
    for row in rows:
        node = ET.SubElement(top, item)
        for key, value in row.items():
            child = ET.SubElement(node, key)
            if isinstance(value, list):
                for element in value:
                    sub = ET.SubElement(child, "keyword" if isinstance(element, str) else "item")
                    if isinstance(element, dict):
                        for k, v in element.items():
                            ET.SubElement(sub, k).text = "" if v is None else str(v)
                    else:
                        sub.text = str(element)
            elif isinstance(value, bool):
                child.text = "true" if value else "false"
            else:
                child.text = "" if value is None else str(value)
    return _declared(top)


def _declared(top: ET.Element) -> bytes:
    body: bytes = ET.tostring(top, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + body


def _answer(
    fmt: str, root: str, item: str, rows: list[dict[str, Any]], status: int = 200
) -> Response:
    if fmt == "xml":
        return Response(_xml(root, item, rows), status, media_type="text/xml; charset=utf-8")
    return Response(
        json.dumps(rows, ensure_ascii=False), status, media_type="application/json; charset=utf-8"
    )


def _error(fmt: str, code: int, description: str) -> Response:
    return _answer(fmt, "errors", "error", [{"code": code, "description": description}], code)


def _when(moment: datetime | None) -> str | None:
    return as_utc(moment).astimezone(LOCAL_TZ).isoformat(timespec="seconds") if moment else None


async def _guard(ctx: Ctx, name: str, work: Any) -> Response:
    fmt = name.rpartition(".")[2] if name.rpartition(".")[2] in FORMATS else "json"
    try:
        return await work(fmt)  # type: ignore[no-any-return]
    except Open311Error as exc:
        await ctx.session.rollback()
        return _error(fmt, exc.code, exc.description)
    except DomainError as exc:
        await ctx.session.rollback()
        text = ctx._(exc.detail, **exc.params)
        description = f"{exc.field}: {text}" if exc.field else text
        return _error(fmt, exc.status if exc.status != 422 else 400, description)


@router.get("/discovery.{fmt}", summary="Where and what this endpoint is")
async def discovery(
    fmt: str, request: Request, ctx: Ctx = Depends(any_ctx, scope="function")
) -> Response:
    async def work(f: str) -> Response:
        _split(f"discovery.{fmt}")
        base = str(request.base_url).rstrip("/") + "/open311/v2/"
        doc = {
            "changeset": "2026-11-28T00:00:00+08:00",
            "contact": ctx._("City digital governance centre"),
            "key_service": ctx._(
                "Ask the centre for an API token with the case-intake permission."
            ),
            "endpoints": [
                {
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": base,
                    "changeset": "2026-11-28T00:00:00+08:00",
                    "type": "production",
                    "formats": list(FORMATS.values()),
                }
            ],
        }
        if f == "xml":
            top = ET.Element("discovery")
            for key in ("changeset", "contact", "key_service"):
                ET.SubElement(top, key).text = str(doc[key])
            endpoints = ET.SubElement(top, "endpoints")
            endpoint = ET.SubElement(endpoints, "endpoint")
            for key in ("specification", "url", "changeset", "type"):
                ET.SubElement(endpoint, key).text = str(doc["endpoints"][0][key])  # type: ignore[index]
            formats = ET.SubElement(endpoint, "formats")
            for mime in FORMATS.values():
                ET.SubElement(formats, "format").text = mime
            body = _declared(top)
            return Response(body, media_type="text/xml; charset=utf-8")
        return Response(
            json.dumps(doc, ensure_ascii=False), media_type="application/json; charset=utf-8"
        )

    return await _guard(ctx, f"discovery.{fmt}", work)


async def _services(ctx: Ctx) -> list[Category]:
    rows = (
        (await ctx.session.execute(select(Category).where(Category.active).order_by(Category.code)))
        .scalars()
        .all()
    )
    parents = {c.parent_id for c in rows if c.parent_id}
    return [c for c in rows if c.id not in parents]  # the leaves: what a citizen can pick


@router.get("/services.{fmt}", summary="The service types (our case categories)")
async def services(fmt: str, ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    async def work(f: str) -> Response:
        _split(f"services.{fmt}")
        rows = await _services(ctx)
        names = {c.id: c.name for c in (await ctx.session.execute(select(Category))).scalars()}
        out = [
            {
                "service_code": c.code,
                "service_name": c.name,
                "description": c.name,
                "metadata": False,
                "type": "realtime",
                "keywords": ",".join(c.keywords),
                "group": names.get(c.parent_id or 0, ""),
            }
            for c in rows
        ]
        return _answer(f, "services", "service", out)

    return await _guard(ctx, f"services.{fmt}", work)


@router.get("/services/{name}", summary="A service definition (its extra attributes)")
async def service_definition(name: str, ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    async def work(f: str) -> Response:
        code, _ = _split(name)
        if code not in {c.code for c in await _services(ctx)}:
            raise Open311Error(404, f"service_code {code} not found")
        doc = {"service_code": code, "attributes": []}
        if f == "xml":
            top = ET.Element("service_definition")
            ET.SubElement(top, "service_code").text = code
            ET.SubElement(top, "attributes")
            body = _declared(top)
            return Response(body, media_type="text/xml; charset=utf-8")
        return Response(json.dumps(doc), media_type="application/json; charset=utf-8")

    return await _guard(ctx, name, work)


def _float(value: str | None, field: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(str(value))
    except ValueError:
        raise ValidationFailed("The number is not valid.", field=field) from None


@router.post("/requests.{fmt}", summary="File a service request (needs api_key)")
async def post_request(
    fmt: str, request: Request, ctx: Ctx = Depends(any_ctx, scope="function")
) -> Response:
    async def work(f: str) -> Response:
        _split(f"requests.{fmt}")
        form = await request.form()
        data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        data.update({k: v for k, v in request.query_params.items() if k not in data})
        key = data.get("api_key", "")
        principal = await tokens.resolve(ctx.session, key, ip=ctx.ip) if key else None
        if principal is None or not principal.has("linkage.intake"):
            raise Open311Error(403, "api_key is missing or not valid")
        code = data.get("service_code", "")
        if code not in {c.code for c in await _services(ctx)}:
            raise Open311Error(400, f"service_code {code or '(none)'} not found")
        lat, lon = _float(data.get("lat"), "lat"), _float(data.get("long"), "long")
        name = " ".join(p for p in (data.get("last_name"), data.get("first_name")) if p) or None
        result = await intake.create(
            ctx.session,
            principal,
            ctx.settings,
            intake.CaseIn(
                channel="open311",
                description=data.get("description", ""),
                address_text=data.get("address_string", ""),
                lon=lon,
                lat=lat,
                category=code,
                reporter_name=name,
                reporter_phone=data.get("phone") or None,
                details={
                    k: data[k] for k in ("device_id", "account_id", "media_url") if data.get(k)
                },
            ),
        )
        row = {
            "service_request_id": str(result.case.id),
            "service_notice": ctx._(
                "Your request is received; track it with code {code}.",
                code=intake.case_code(result.case),
            ),
            "account_id": data.get("account_id"),
        }
        return _answer(f, "service_requests", "request", [row], 201)

    return await _guard(ctx, f"requests.{fmt}", work)


async def _request_rows(ctx: Ctx, cases: list[Case]) -> list[dict[str, Any]]:
    codes = {
        c.id: (c.code, c.name) for c in (await ctx.session.execute(select(Category))).scalars()
    }
    updated = (
        dict(
            (
                await ctx.session.execute(
                    select(CaseStep.case_id, func.max(CaseStep.at))
                    .where(CaseStep.case_id.in_([c.id for c in cases]))
                    .group_by(CaseStep.case_id)
                )
            ).all()
        )
        if cases
        else {}
    )
    out = []
    for c in cases:
        code, name = codes.get(c.category_id or 0, ("", ""))
        out.append(
            {
                "service_request_id": str(c.id),
                "status": "closed" if c.status in ENDED else "open",
                "status_notes": ctx._(TITLES[c.status]),
                "service_name": name,
                "service_code": code,
                "description": c.description,
                "agency_responsible": "",
                "service_notice": "",
                "requested_datetime": _when(c.reported_at),
                "updated_datetime": _when(updated.get(c.id)),
                "expected_datetime": _when(c.due_at),
                "address": c.address_text,
                "address_id": str(c.address_id or ""),
                "zipcode": "",
                "lat": c.lat,
                "long": c.lon,
                "media_url": "",
            }
        )
    return out


def _id(text: str) -> int | None:
    """A request id as our case id (ASCII digits within the id column's range), else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number <= 2**31 - 1 else None


def _date(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{field} is not a W3C date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TZ)


@router.get("/requests.{fmt}", summary="Service requests, filtered")
async def get_requests(
    fmt: str, request: Request, ctx: Ctx = Depends(any_ctx, scope="function")
) -> Response:
    async def work(f: str) -> Response:
        _split(f"requests.{fmt}")
        q = request.query_params
        stmt = select(Case).where(Case.channel.in_(PUBLIC_CHANNELS))
        if q.get("service_request_id"):
            ids = [n for n in (_id(i) for i in q["service_request_id"].split(",")) if n]
            stmt = stmt.where(Case.id.in_(ids))
        else:
            start, end = (
                _date(q.get("start_date"), "start_date"),
                _date(q.get("end_date"), "end_date"),
            )
            if q.get("service_code"):
                codes = [c.strip() for c in q["service_code"].split(",")]
                stmt = stmt.join(Category, Category.id == Case.category_id).where(
                    Category.code.in_(codes)
                )
            if start:
                stmt = stmt.where(Case.reported_at >= start)
            if end:
                stmt = stmt.where(Case.reported_at <= end)
            status = q.get("status")
            if status:
                wanted = {s.strip() for s in status.split(",")}
                if not wanted <= {"open", "closed"}:
                    raise Open311Error(400, "status is open or closed")
                if wanted == {"open"}:
                    stmt = stmt.where(Case.status.not_in(ENDED))
                elif wanted == {"closed"}:
                    stmt = stmt.where(Case.status.in_(ENDED))
            if not start and not end:  # the spec's default window: the last 90 days
                stmt = stmt.where(Case.reported_at >= utcnow() - timedelta(days=90))
        rows = (
            (await ctx.session.execute(stmt.order_by(Case.id.desc()).limit(MAX_RESULTS)))
            .scalars()
            .all()
        )
        return _answer(f, "service_requests", "request", await _request_rows(ctx, list(rows)))

    return await _guard(ctx, f"requests.{fmt}", work)


@router.get("/requests/{name}", summary="One service request")
async def get_request(name: str, ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    async def work(f: str) -> Response:
        stem, _ = _split(name)
        case = (
            await ctx.session.execute(
                select(Case).where(
                    Case.id == (_id(stem) or -1),
                    Case.channel.in_(PUBLIC_CHANNELS),
                )
            )
        ).scalar_one_or_none()
        if case is None:
            raise Open311Error(404, f"service_request_id {stem} not found")
        return _answer(f, "service_requests", "request", await _request_rows(ctx, [case]))

    return await _guard(ctx, name, work)


@router.get("/tokens/{name}", summary="The request a token became")
async def get_token(name: str, ctx: Ctx = Depends(any_ctx, scope="function")) -> Response:
    async def work(f: str) -> Response:
        stem, _ = _split(name)
        # requests are created at once (no queue): a token is the request id itself
        number = _id(stem)
        found = await ctx.session.get(Case, number) if number else None
        if found is None or found.channel not in PUBLIC_CHANNELS:
            raise Open311Error(404, f"token {stem} not found")
        return _answer(
            f, "service_requests", "request", [{"service_request_id": stem, "token": stem}]
        )

    return await _guard(ctx, name, work)
