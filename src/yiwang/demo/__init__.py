"""The demo district: the real outline of 溧水区 with a synthetic standard map (towns,
communities and villages, 1,106 grids; see ``district.py``) and a handful of accounts, one per
kind of user."""

from __future__ import annotations

from collections.abc import Callable

import shapely
from sqlalchemy import select

from yiwang.basedata import actuals, addresses, areas
from yiwang.basedata.models import Road
from yiwang.core.auth import passwords
from yiwang.core.auth import service as users
from yiwang.core.auth.models import User
from yiwang.core.auth.principal import Principal
from yiwang.core.db import Database
from yiwang.core.orgs import service as orgs
from yiwang.core.orgs.models import OrgKind, OrgNode
from yiwang.core.settings import Settings
from yiwang.demo import population
from yiwang.demo.district import StandardMap, build_standard_map
from yiwang.demo.streets import Streets, address_rows, build_streets, road_rows

DEPARTMENTS = (
    ("ZWB", "区政务服务管理办公室"),
    ("CGJ", "区城市管理局"),
    ("ZJJ", "区住房和城乡建设局"),
)

#: How big a district ``yiwang demo --scale`` builds.
SCALES: dict[str, dict[str, int]] = {
    "small": {
        "addresses": 12_000,
        "houses": 15_000,
        "people": 20_000,
        "units": 2_000,
        "facilities": 3_000,
    },
    # the real district's size: about 4,000,000 base records
    "full": {
        "addresses": 102_000,
        "houses": 1_400_000,
        "people": 2_000_000,
        "units": 300_000,
        "facilities": 300_000,
    },
}
BATCH = 20_000

ACCOUNTS = (
    # username, display name, org ("" = district, else a town or department suffix), roles, note
    ("admin", "系统管理员", "", ("sysadmin",), "system administrator (2FA)"),
    ("security", "安全管理员", "", ("secadmin",), "security administrator (2FA)"),
    ("auditor", "审计管理员", "", ("auditadmin",), "audit administrator (2FA)"),
    ("leader", "区指挥中心", "", ("leader",), "district-wide view"),
    ("yongyang", "永阳街道工作人员", "001", ("staff",), "one town's view"),
    ("wangge", "网格员", "001001001", ("grid_worker",), "one grid's view (grid worker)"),
)


async def _actuals(
    db: Database,
    settings: Settings,
    system: Principal,
    standard: StandardMap,
    streets: Streets,
    seed: int,
    sizes: dict[str, int],
    progress: Callable[[str], None],
) -> None:
    """Houses, people, units and facilities, in batches of ``BATCH`` rows per transaction."""
    lived_in: list[tuple[str, str]] = []
    done = 0
    for houses in population.house_batches(streets, seed, sizes["houses"], BATCH):
        async with db.session() as session:
            await actuals.import_houses(session, system, houses)
        lived_in.extend((h.code, h.address_code) for h in houses if h.use == "residential")
        done += len(houses)
        progress(f"houses {done:,}")
    done = 0
    for people in population.people_batches(lived_in, seed, sizes["people"], BATCH):
        async with db.session() as session:
            await actuals.import_people(session, settings, system, people)
        done += len(people)
        progress(f"people {done:,}")
    del lived_in
    done = 0
    for units in population.unit_batches(streets, seed, sizes["units"], BATCH):
        async with db.session() as session:
            await actuals.import_units(session, settings, system, units)
        done += len(units)
        progress(f"units {done:,}")
    outline = standard.outline
    shapely.prepare(outline)
    done = 0
    for facilities in population.facility_batches(streets, seed, sizes["facilities"], BATCH):
        inside = shapely.contains_xy(
            outline, [f.lon for f in facilities], [f.lat for f in facilities]
        )
        kept = [f for f, ok in zip(facilities, inside, strict=True) if ok]
        async with db.session() as session:
            await actuals.import_facilities(session, system, kept)
        done += len(kept)
        progress(f"facilities {done:,}")


async def build_demo(
    db: Database,
    settings: Settings,
    *,
    seed: int,
    password: Callable[[], str],
    progress: Callable[[str], None] = lambda step: None,
    scale: str = "small",
) -> list[tuple[str, str, str]]:
    """Create the demo district, its orgs and accounts (idempotent: a district already built
    is kept); (re)set and return the accounts' logins. ``progress`` is told each step."""
    system = Principal.system("demo")
    sizes = SCALES[scale]
    logins = []
    async with db.session() as session:
        existing = set((await session.execute(select(OrgNode.code))).scalars())
    standard = None
    if settings.district_code + "001001001" not in existing:
        progress("standard map: towns, communities, grids")
        standard = build_standard_map(settings.district_code, seed)
        async with db.session() as session:
            await areas.set_district_outline(
                session, system, settings.district_code, standard.outline
            )
            await areas.import_areas(session, system, standard.rows)
    async with db.session() as session:
        has_roads = (await session.execute(select(Road.id).limit(1))).first() is not None
    if not has_roads:
        standard = standard or build_standard_map(settings.district_code, seed)
        progress("roads and standard addresses")
        streets = build_streets(standard, seed, addresses=sizes["addresses"])
        async with db.session() as session:
            await addresses.import_roads(session, system, road_rows(streets))
            await addresses.import_addresses(session, system, address_rows(streets))
        await _actuals(db, settings, system, standard, streets, seed, sizes, progress)
    progress("accounts")
    async with db.session() as session:
        root = await orgs.get_by_code(session, settings.district_code)
        for suffix, name in DEPARTMENTS:
            code = f"{settings.district_code}-{suffix}"
            if code not in existing:
                await orgs.create(
                    session, system, orgs.OrgCreate(OrgKind.DEPARTMENT, code, name, root.id)
                )
        for username, display, org_suffix, roles, note in ACCOUNTS:
            secret = password()
            user = (
                await session.execute(select(User).where(User.username == username))
            ).scalar_one_or_none()
            if user is None:
                await users.create_user(
                    session,
                    settings,
                    system,
                    users.UserCreate(
                        username, secret, settings.district_code + org_suffix, display, roles
                    ),
                )
            else:
                # The demo's own accounts: the same seed prints the same passwords again,
                # which the no-reuse rule would refuse, so set the hash directly.
                user.password_hash = passwords.hash_password(settings, secret)
                user.active, user.locked_until = True, None
            logins.append((username, secret, note))
    return logins
