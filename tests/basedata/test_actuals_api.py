"""The actuals over HTTP: masked lists, reveal only with the permission, CSV import errors
named by row (in Chinese by default), nothing written on error."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.basedata.conftest import build_district
from tests.basedata.test_actuals import an_id
from tests.conftest import PASSWORD, csrf_from, login
from yiwang.basedata.locator import forget_locator
from yiwang.basedata.models import Address, Person
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth import service as users
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.settings import Settings


@pytest.fixture
async def district(db: Database, settings: Settings) -> str:
    forget_locator()
    await build_district(db, settings, addresses_wanted=600)
    async with db.session() as session:
        for name, role in (
            ("leader", "leader"),
            ("officer", "basedata_officer"),
            ("admin2", "sysadmin"),
        ):
            await users.create_user(
                session,
                settings,
                Principal.system("t"),
                users.UserCreate(name, PASSWORD, "320117", name, (role,)),
            )
        address = (
            await session.execute(select(Address.code).where(Address.level == "door").limit(1))
        ).scalar_one()
    return address


async def as_user(client: httpx.AsyncClient, username: str) -> str:
    """Sign in; the CSRF token for JSON calls made with the session cookie."""
    assert (await login(client, username)).status_code == 303
    token = await csrf_from(client, "/account")
    client.headers["accept"] = "application/json"
    return token


def csv_file(text: str) -> dict:
    return {"file": ("people.csv", text.encode("utf-8"), "text/csv")}


async def test_csv_import_errors_name_rows_and_nothing_is_written(
    district: str, client, db
) -> None:
    body = (
        "name,id_number,address_code,phone\n"
        f"张三,{an_id()},{district},13812341234\n"
        f"李四,{an_id('32011719850612201')[:-1]}0,{district},\n"
        f"王五,{an_id('32011719850612301')},NOPE00000,\n"
    )
    token = await as_user(client, "leader")
    refused = await client.post(
        "/api/v1/basedata/people/import", files=csv_file(body), headers={"x-csrf-token": token}
    )
    assert refused.status_code == 403  # a leader reads; importing is the officer's job
    client.cookies.clear()
    token = await as_user(client, "officer")
    bad = await client.post(
        "/api/v1/basedata/people/import", files=csv_file(body), headers={"x-csrf-token": token}
    )
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["code"] == "invalid_rows" and problem["error_count"] == 2
    assert [(e["row"], e["field"]) for e in problem["errors"]] == [
        (3, "id_number"),
        (4, "address_code"),
    ]
    assert "校验" in problem["errors"][0]["message"]  # in Chinese by default
    async with db.session() as session:
        assert (await session.execute(select(Person))).first() is None
    good = body.rsplit("\n", 3)[0] + "\n"
    done = await client.post(
        "/api/v1/basedata/people/import", files=csv_file(good), headers={"x-csrf-token": token}
    )
    assert done.status_code == 200 and done.json() == {"imported": 1}


async def test_lists_are_masked_and_reveal_needs_the_permission(district: str, client, db) -> None:
    from yiwang.basedata import actuals

    number = an_id()
    async with db.session() as session:
        await actuals.import_people(
            session,
            client._transport.app.state.settings,
            Principal.system("t"),  # type: ignore[attr-defined]
            [actuals.PersonRow(1, "张三丰", number, district, phone="13812341234")],
        )
        person_id = (await session.execute(select(Person.id))).scalar_one()
    csrf = await as_user(client, "leader")
    listing = (await client.get("/api/v1/basedata/people")).json()
    assert listing["total"] == 1
    item = listing["items"][0]
    assert (item["name"], item["phone"], item["revealed"]) == ("张**", "138****1234", False)
    assert number not in str(listing)
    denied = await client.post(
        f"/api/v1/basedata/people/{person_id}/reveal",
        json={"reason": "核实"},
        headers={"x-csrf-token": csrf},
    )
    assert denied.status_code == 403
    found = await client.post(
        "/api/v1/basedata/people/lookup", json={"id_number": number}, headers={"x-csrf-token": csrf}
    )
    assert found.status_code == 200 and found.json()["person"]["id"] == person_id
    missing = await client.post(
        "/api/v1/basedata/people/lookup",
        json={"id_number": an_id("11010519491231002")},
        headers={"x-csrf-token": csrf},
    )
    # not found is an answer, not an error: the failed lookup's audit record is kept
    assert missing.status_code == 200 and missing.json() == {"found": False, "person": None}
    async with db.session() as session:
        results = (
            (
                await session.execute(
                    select(AuditRecord.result).where(AuditRecord.action == "person.lookup")
                )
            )
            .scalars()
            .all()
        )
    assert sorted(results) == ["failure", "success"]


async def test_an_officer_reveals_in_clear(district: str, app, db) -> None:
    from yiwang.basedata import actuals

    number = an_id()
    async with db.session() as session:
        await actuals.import_people(
            session,
            app.state.settings,
            Principal.system("t"),
            [actuals.PersonRow(1, "张三丰", number, district)],
        )
        person_id = (await session.execute(select(Person.id))).scalar_one()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(
        transport=transport, base_url="https://testserver", headers={"accept": "text/html"}
    ) as officer:
        csrf = await as_user(officer, "officer")
        shown = await officer.post(
            f"/api/v1/basedata/people/{person_id}/reveal",
            json={"reason": "核实身份"},
            headers={"x-csrf-token": csrf},
        )
        assert shown.status_code == 200
        assert (shown.json()["name"], shown.json()["id_number"]) == ("张三丰", number)
        short = await officer.post(
            f"/api/v1/basedata/people/{person_id}/reveal",
            json={"reason": ""},
            headers={"x-csrf-token": csrf},
        )
        assert short.status_code == 422
