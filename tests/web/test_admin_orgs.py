"""The org tree page: scope-filtered browsing; adding and renaming by the system
administrator, with the code rules enforced."""

from __future__ import annotations

import httpx

from tests.conftest import World, csrf_from, login, login_admin


async def test_town_clerk_sees_only_their_branch_of_the_tree(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("clerk", org=world.codes["town_a"], roles=("staff",))
    await login(client, "clerk")
    page = await client.get("/admin/orgs")
    assert page.status_code == 200
    assert world.codes["town_a_grid"] in page.text and world.codes["town_b"] not in page.text
    assert "新建组织" not in page.text


async def test_system_administrator_adds_a_grid_and_bad_codes_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    await world.user("sys", roles=("sysadmin",))
    await login_admin(client, world, "sys")
    token = await csrf_from(client, "/admin/orgs")
    from yiwang.core.orgs import service as orgs

    async with world.db.session() as session:
        community = await orgs.get_by_code(session, world.codes["town_a_community"])
    bad = await client.post(
        "/admin/orgs",
        data={
            "parent_id": community.id,
            "kind": "grid",
            "code": "320117002001002",
            "name": "错误网格",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 400 and "上级组织的编码" in bad.text
    good = await client.post(
        "/admin/orgs",
        data={
            "parent_id": community.id,
            "kind": "grid",
            "code": world.codes["town_a_community"] + "002",
            "name": "二网格",
            "csrf_token": token,
        },
    )
    assert good.status_code == 303
    assert "二网格" in (await client.get("/admin/orgs")).text
