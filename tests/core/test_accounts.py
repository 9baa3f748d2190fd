"""Accounts: password policy, lockout, separation of the three administrators, data scope."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, World
from yiwang.core.audit.models import AuditRecord
from yiwang.core.auth import login
from yiwang.core.auth import service as users
from yiwang.core.auth.models import User
from yiwang.core.auth.principal import Principal
from yiwang.core.errors import OutOfScope, PermissionDenied, ValidationFailed
from yiwang.core.orgs import service as orgs
from yiwang.core.timeutil import utcnow


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short-1a", "at least"),
        ("alllowercaseletters", "mix"),
        ("lowercase123456", "mix"),
        ("Xwangwei-Pass1", "username"),
    ],
)
async def test_password_policy_rejects_weak_passwords(
    world: World, password: str, reason: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        await world.user("wangwei", password=password)
    assert err.value.field == "password"
    assert reason in err.value.detail


async def test_password_policy_accepts_three_classes(world: World) -> None:
    assert await world.user("wangwei", password="abcdefgh12XY") > 0


async def test_last_five_passwords_cannot_be_reused(world: World) -> None:
    user_id = await world.user("liu")
    history = [PASSWORD] + [f"Another-Pass-{i}x" for i in range(1, 5)]
    async with world.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        for pw in history[1:]:
            await users.set_password(session, world.settings, user, pw)
        for old in history:
            with pytest.raises(ValidationFailed, match="last"):
                await users.set_password(session, world.settings, user, old)
        # The sixth-last is allowed again once five newer ones exist.
        await users.set_password(session, world.settings, user, "Fresh-Pass-0001")
        await users.set_password(session, world.settings, user, PASSWORD)


async def _login(world: World, username: str, password: str) -> login.LoginOutcome:
    async with world.db.session() as session:
        return await login.authenticate(
            session, world.settings, username, password, ip="198.51.100.7"
        )


async def test_five_failures_lock_the_account_and_the_right_password_then_fails(
    world: World,
) -> None:
    await world.user("zhao")
    for _ in range(4):
        outcome = await _login(world, "zhao", "wrong-password")
        assert not outcome.ok and isinstance(outcome.error, login.LoginFailed)
    fifth = await _login(world, "zhao", "wrong-password")
    assert isinstance(fifth.error, login.AccountLocked)
    locked = await _login(world, "zhao", PASSWORD)
    assert not locked.ok and isinstance(locked.error, login.AccountLocked)
    async with world.db.session() as session:
        actions = (
            await session.execute(
                select(AuditRecord.action, AuditRecord.result)
                .where(AuditRecord.actor_name == "zhao")
                .order_by(AuditRecord.seq)
            )
        ).all()
    assert actions.count(("auth.login", "failure")) == 6
    assert ("auth.lockout", "success") in actions


async def test_lock_expires_after_the_lockout_period(world: World) -> None:
    user_id = await world.user("qian")
    for _ in range(5):
        await _login(world, "qian", "wrong-password")
    async with world.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None and user.locked_until is not None
        user.locked_until = utcnow() - timedelta(seconds=1)
    assert (await _login(world, "qian", PASSWORD)).ok


async def test_failures_older_than_the_window_do_not_count(world: World) -> None:
    user_id = await world.user("sun")
    for _ in range(4):
        await _login(world, "sun", "wrong-password")
    async with world.db.session() as session:
        from sqlalchemy import update

        from yiwang.core.auth.models import LoginFailure

        await session.execute(
            update(LoginFailure)
            .where(LoginFailure.user_id == user_id)
            .values(at=utcnow() - timedelta(minutes=16))
        )
    outcome = await _login(world, "sun", "wrong-password")
    assert isinstance(outcome.error, login.LoginFailed)


async def test_unknown_user_and_wrong_password_look_the_same(world: World) -> None:
    await world.user("zhou")
    unknown = await _login(world, "nobody", "whatever-123A")
    wrong = await _login(world, "zhou", "whatever-123A")
    assert type(unknown.error) is type(wrong.error) is login.LoginFailed


async def test_administrators_must_enrol_a_second_factor(world: World) -> None:
    await world.user("root1", roles=("sysadmin",))
    await world.user("plain", roles=("staff",))
    assert (await _login(world, "root1", PASSWORD)).stage == login.STAGE_ENROL
    assert (await _login(world, "plain", PASSWORD)).stage == login.STAGE_FULL


async def test_idle_session_ends(world: World) -> None:
    await world.user("wu", roles=("staff",))
    outcome = await _login(world, "wu", PASSWORD)
    async with world.db.session() as session:
        assert await login.resolve_session(session, world.settings, outcome.token)
        from sqlalchemy import update

        from yiwang.core.auth.models import WebSession

        await session.execute(
            update(WebSession).values(
                last_seen_at=utcnow() - timedelta(minutes=world.settings.session_idle_minutes + 1)
            )
        )
    async with world.db.session() as session:
        assert await login.resolve_session(session, world.settings, outcome.token) is None


async def test_one_account_cannot_hold_two_administrator_roles(world: World) -> None:
    with pytest.raises(users.SeparationOfDuties):
        await world.user("both", roles=("sysadmin", "auditadmin"))


async def test_three_administrators_cannot_do_each_others_jobs(world: World) -> None:
    sys_id = await world.user("sys", roles=("sysadmin",))
    await world.user("sec", roles=("secadmin",))
    aud_id = await world.user("aud", roles=("auditadmin",))
    staff_id = await world.user("clerk", roles=("staff",))
    sysadmin, secadmin, auditor = [await world.principal(n) for n in ("sys", "sec", "aud")]
    async with world.db.session() as session:
        # The system administrator manages accounts but grants no roles and reads no audit.
        with pytest.raises(PermissionDenied):
            await users.set_roles(session, sysadmin, staff_id, ["leader"])
        from yiwang.core.audit import service as audit

        with pytest.raises(PermissionDenied):
            await audit.search(session, sysadmin, audit.AuditFilter())
        # ...nor may they take over another administrator's account.
        with pytest.raises(users.SeparationOfDuties):
            await users.reset_password(session, world.settings, sysadmin, aud_id, "Takeover-Pass-1")
        # The security administrator grants roles, but creates no accounts and never
        # changes their own roles.
        with pytest.raises(PermissionDenied):
            await users.create_user(
                session, world.settings, secadmin, users.UserCreate("x1", PASSWORD, "320117")
            )
        with pytest.raises(users.SeparationOfDuties):
            await users.set_roles(session, secadmin, secadmin.user_id or 0, ["sysadmin"])
        await users.set_roles(session, secadmin, staff_id, ["leader"])
        # The audit administrator only reads the trail.
        with pytest.raises(PermissionDenied):
            await users.set_active(session, auditor, staff_id, False)
        with pytest.raises(PermissionDenied):
            await users.set_roles(session, auditor, sys_id, [])
        _records, total = await audit.search(session, auditor, audit.AuditFilter())
        assert total > 0


async def test_no_role_may_combine_audit_reading_with_other_duties(world: World) -> None:
    from yiwang.core.plugins import RoleSpec, get_registry

    with pytest.raises(users.SeparationOfDuties):
        users.check_role_spec(
            RoleSpec("bad", "Bad", ("audit.read", "users.manage"), admin_kind="audit"),
            get_registry(),
        )
    with pytest.raises(users.SeparationOfDuties):
        users.check_role_spec(RoleSpec("bad2", "Bad", ("audit.read",)), get_registry())


async def test_town_user_sees_only_their_town(world: World) -> None:
    await world.user("town_a_clerk", org=world.codes["town_a"], roles=("staff",))
    await world.user("town_b_clerk", org=world.codes["town_b"], roles=("staff",))
    await world.user("grid_a", org=world.codes["town_a_grid"], roles=("grid_worker",))
    clerk = await world.principal("town_a_clerk")
    async with world.db.session() as session:
        nodes, total = await orgs.list_visible(session, clerk)
        codes = {n.code for n in nodes}
        assert codes == {
            world.codes["town_a"],
            world.codes["town_a_community"],
            world.codes["town_a_grid"],
        }
        assert total == 3
        listed, _ = await users.list_users(session, clerk)
        assert {u.username for u, _ in listed} == {"town_a_clerk", "grid_a"}
        other = await orgs.get_by_code(session, world.codes["town_b"])
        with pytest.raises(OutOfScope):
            await orgs.get_visible(session, clerk, other.id)
        b_user = (
            await session.execute(select(User).where(User.username == "town_b_clerk"))
        ).scalar_one()
        with pytest.raises(OutOfScope):
            await users.get_visible_user(session, clerk, b_user.id)


async def test_leader_role_widens_scope_to_the_district(world: World) -> None:
    await world.user("boss", org=world.codes["town_a"], roles=("leader",))
    boss = await world.principal("boss")
    async with world.db.session() as session:
        _, total = await orgs.list_visible(session, boss)
    assert total == 8  # district, 2 × (town, community, grid), department


async def test_state_change_writes_an_audit_record_in_the_same_transaction(
    world: World,
) -> None:
    system = Principal.system("test")
    with pytest.raises(RuntimeError):
        async with world.db.session() as session:
            await users.create_user(
                session, world.settings, system, users.UserCreate("ghost", PASSWORD, "320117")
            )
            raise RuntimeError("roll back")
    async with world.db.session() as session:
        ghost = (
            (await session.execute(select(AuditRecord).where(AuditRecord.action == "user.create")))
            .scalars()
            .all()
        )
        assert all(r.details.get("username") != "ghost" for r in ghost)
    await world.user("kept")
    async with world.db.session() as session:
        rec = (
            (
                await session.execute(
                    select(AuditRecord)
                    .where(AuditRecord.action == "user.create")
                    .order_by(AuditRecord.seq.desc())
                )
            )
            .scalars()
            .first()
        )
        assert rec is not None and rec.details["username"] == "kept"
        assert rec.actor_name == "test" and rec.result == "success"


async def test_account_made_by_an_administrator_needs_a_new_password_from_its_holder(
    world: World,
) -> None:
    await world.user("sys", roles=("sysadmin",))
    await world.user("sec", roles=("secadmin",))
    sysadmin, secadmin = await world.principal("sys"), await world.principal("sec")
    async with world.db.session() as session:
        user = await users.create_user(
            session, world.settings, sysadmin, users.UserCreate("newbie", PASSWORD, "320117")
        )
        assert user.must_change_password
    assert (await _login(world, "newbie", PASSWORD)).stage == login.STAGE_PASSWORD
    # No web administrator can make that account (or any) an administrator, nor take an
    # administrator role away: that is the platform operator's, on the server.
    async with world.db.session() as session:
        user = (await session.execute(select(User).where(User.username == "newbie"))).scalar_one()
        with pytest.raises(users.SeparationOfDuties):
            await users.set_roles(session, secadmin, user.id, ["auditadmin"])
        with pytest.raises(users.SeparationOfDuties):
            await users.set_roles(session, secadmin, sysadmin.user_id or 0, ["staff"])
        await users.set_roles(session, secadmin, user.id, ["staff"])  # ordinary roles: yes
        await users.set_roles(session, Principal.system("cli"), user.id, ["auditadmin"])
    assert "auditadmin" in (await world.principal("newbie")).roles


async def test_a_locked_account_accepts_no_second_factor_codes(world: World) -> None:
    import pyotp

    from yiwang.core.security.crypto import SM4Cipher

    uid = await world.user("guarded", roles=("staff",))
    secret = pyotp.random_base32()
    async with world.db.session() as session:
        user = await session.get(User, uid)
        assert user is not None
        user.totp_secret = SM4Cipher(world.settings.data_key_bytes()).encrypt(
            secret, associated=str(uid).encode()
        )
    waiting = await _login(world, "guarded", PASSWORD)  # a session at the code step
    assert waiting.stage == login.STAGE_MFA
    for _ in range(5):
        await _login(world, "guarded", "wrong-password")
    async with world.db.session() as session:
        active = await login.resolve_session(session, world.settings, waiting.token)
        assert active is None  # sessions waiting for a code ended with the lockout
    # Even a session that somehow survived would be refused while the account is locked.
    principal = await world.principal("guarded")
    async with world.db.session() as session:
        user = await session.get(User, uid)
        assert user is not None and user.locked_until is not None
        from yiwang.core.auth.models import WebSession

        web = WebSession(
            id="x" * 64,
            user_id=uid,
            stage=login.STAGE_MFA,
            expires_at=utcnow() + timedelta(hours=1),
        )
        session.add(web)
        await session.flush()
        fake = login.ActiveSession(web, user, principal)
        outcome = await login.verify_second_factor(
            session, world.settings, fake, pyotp.TOTP(secret).now()
        )
        assert isinstance(outcome.error, login.AccountLocked)
