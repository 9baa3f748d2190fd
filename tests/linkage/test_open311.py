"""Open311 GeoReport v2: the spec's example calls, in XML and JSON, against our district."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
from sqlalchemy import func, select

from tests.linkage.conftest import Desk
from yiwang.core.auth import tokens
from yiwang.linkage import workflow
from yiwang.linkage.models import Case


async def api_key(desk: Desk, username: str = "centre") -> str:
    who = await desk.who(username)
    async with desk.db.session() as s:
        _, secret = await tokens.create(s, who, "open311 app", ["linkage.intake"])
    return secret


def spec_post(desk: Desk, key: str) -> dict[str, str]:
    """The spec's example POST, moved to our district and our service codes."""
    lon, lat = desk.spot
    return {
        "api_key": key,
        "jurisdiction_id": "lishui.gov.cn",
        "service_code": "E0101",
        "lat": str(lat),
        "long": str(lon),
        "address_string": desk.address,
        "email": "smit333@example.org",
        "device_id": "tt222111",
        "account_id": "123456",
        "first_name": "john",
        "last_name": "smith",
        "phone": "13911111111",
        "description": "路边垃圾堆放 ears are falling off",
    }


async def test_discovery_services_and_definitions(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    found = await desk_client.get("/open311/v2/discovery.json")
    assert found.status_code == 200
    endpoint = found.json()["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2/") and "text/xml" in endpoint["formats"]
    xml = ET.fromstring((await desk_client.get("/open311/v2/discovery.xml")).content)
    assert xml.tag == "discovery" and xml.find("endpoints/endpoint/type").text == "production"
    services = (await desk_client.get("/open311/v2/services.json")).json()
    codes = {s["service_code"] for s in services}
    assert {"E0101", "C0101", "H03"} <= codes and "E01" not in codes  # leaves only
    rubbish = next(s for s in services if s["service_code"] == "E0101")
    assert rubbish["service_name"] == "暴露垃圾" and rubbish["group"] == "市容环境"
    assert rubbish["metadata"] is False and rubbish["type"] == "realtime"
    tree = ET.fromstring((await desk_client.get("/open311/v2/services.xml")).content)
    assert tree.tag == "services" and len(tree.findall("service")) == len(services)
    assert tree.find("service/metadata").text == "false"
    definition = (await desk_client.get("/open311/v2/services/E0101.json")).json()
    assert definition == {"service_code": "E0101", "attributes": []}
    missing = await desk_client.get("/open311/v2/services/NOPE.xml")
    assert missing.status_code == 404
    assert ET.fromstring(missing.content).find("error/code").text == "404"


async def test_post_needs_a_valid_api_key_and_answers_in_the_spec_format(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    for key in ("", "yw_invalid"):
        refused = await desk_client.post("/open311/v2/requests.xml", data=spec_post(desk, key))
        assert refused.status_code == 403
        error = ET.fromstring(refused.content)
        assert error.tag == "errors" and error.find("error/code").text == "403"
        assert error.find("error/description").text
    refused_json = await desk_client.post("/open311/v2/requests.json", data=spec_post(desk, "bad"))
    assert refused_json.status_code == 403
    assert refused_json.json() == [{"code": 403, "description": "api_key is missing or not valid"}]
    async with desk.db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Case))).scalar_one() == 0

    key = await api_key(desk)
    made = await desk_client.post("/open311/v2/requests.xml", data=spec_post(desk, key))
    assert made.status_code == 201, made.text
    request = ET.fromstring(made.content).find("request")
    assert request is not None
    request_id = request.find("service_request_id").text
    assert request.find("account_id").text == "123456" and request.find("service_notice").text
    bad_code = await desk_client.post(
        "/open311/v2/requests.json", data=spec_post(desk, key) | {"service_code": "999"}
    )
    assert bad_code.status_code == 400 and bad_code.json()[0]["code"] == 400
    outside = await desk_client.post(
        "/open311/v2/requests.json", data=spec_post(desk, key) | {"lat": "37.76", "long": "-122.42"}
    )
    assert outside.status_code == 400 and "lon" in outside.json()[0]["description"]

    one = (await desk_client.get(f"/open311/v2/requests/{request_id}.json")).json()
    assert one[0]["status"] == "open" and one[0]["service_code"] == "E0101"
    assert one[0]["status_notes"] == "已受理"  # the detailed status, in Chinese by default
    listed = ET.fromstring(
        (await desk_client.get("/open311/v2/requests.xml?status=open&service_code=E0101")).content
    )
    assert [r.find("service_request_id").text for r in listed.findall("request")] == [request_id]
    assert (await desk_client.get("/open311/v2/requests.json?status=closed")).json() == []
    token = (await desk_client.get(f"/open311/v2/tokens/{request_id}.json")).json()
    assert token == [{"service_request_id": request_id, "token": request_id}]
    nothing = await desk_client.get("/open311/v2/requests/99999.json")
    assert nothing.status_code == 404 and nothing.json()[0]["code"] == 404
    bad_date = await desk_client.get("/open311/v2/requests.json?start_date=yesterday")
    assert bad_date.status_code == 400

    # closed in our workflow: closed in Open311, with our status in the notes
    centre = await desk.who("centre")
    async with desk.db.session() as s:
        await workflow.reject(s, centre, int(request_id), "非政府职责")
    gone = (await desk_client.get(f"/open311/v2/requests/{request_id}.json")).json()[0]
    assert gone["status"] == "closed" and gone["status_notes"] == "不予立案"


async def test_private_channels_are_not_published(
    desk: Desk, desk_client: httpx.AsyncClient
) -> None:
    from yiwang.linkage import intake

    centre = await desk.who("centre")
    async with desk.db.session() as s:
        made = await intake.create(
            s,
            centre,
            desk.settings,
            intake.CaseIn(
                channel="mailbox",
                description="举报某单位",
                title="来信",
                reporter_name="某人",
                reporter_phone="13900000000",
            ),
        )
    hidden = await desk_client.get(f"/open311/v2/requests/{made.case.id}.json")
    assert hidden.status_code == 404
    assert (await desk_client.get("/open311/v2/requests.json")).json() == []


async def test_odd_ids_are_not_found_not_errors(desk: Desk, desk_client: httpx.AsyncClient) -> None:
    for odd in ("²", "99999999999999", "-1", "1e3"):
        answer = await desk_client.get(f"/open311/v2/requests/{odd}.json")
        assert answer.status_code == 404, odd
        token = await desk_client.get(f"/open311/v2/tokens/{odd}.xml")
        assert token.status_code == 404, odd
    listed = await desk_client.get("/open311/v2/requests.json?service_request_id=²,99999999999")
    assert listed.status_code == 200 and listed.json() == []
