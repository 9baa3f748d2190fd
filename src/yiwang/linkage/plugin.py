"""What linkage registers: permissions and roles, the calendar, category and case APIs, the
reporter notifications, the SLA and training jobs."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession

from yiwang.core.plugins import (
    EventHandler,
    NavItem,
    PeriodicJob,
    Permission,
    Registry,
    RoleSpec,
)
from yiwang.linkage import (
    categories,
    machine,
    notify,
    open311,
    pages,
    rewards,
    routes,
    routes_cases,
    routes_kpi,
    routes_rewards,
    service,
    suggest,
    workflow,
)
from yiwang.linkage.layers import CaseLayer

PERMISSIONS = (
    Permission("linkage.read", "View cases and the working-day calendar"),
    Permission("linkage.calendar", "Edit the working-day calendar"),
    Permission("linkage.configure", "Edit case categories and the responsibility matrix"),
    Permission("linkage.intake", "Take in cases (hotline operators, other systems)"),
    Permission("linkage.patrol", "Report cases found on patrol"),
    Permission("linkage.dispatch", "File, dispatch, decide requests, merge and close cases"),
    Permission("linkage.handle", "Handle the cases dispatched to your department"),
    Permission("linkage.verify", "Verify handled cases on site"),
    Permission("linkage.supervise", "Supervise (督办) open cases"),
    Permission("linkage.reward", "Propose tip rewards and record their payment"),
    Permission("linkage.reward.approve", "Approve or refuse tip rewards"),
    Permission("linkage.reveal", "See a reporter's name and phone in full (audited)"),
)


async def _sla_job(ctx):  # type: ignore[no-untyped-def]
    async with ctx.db.session() as session:
        await workflow.check_clocks(session)


def register(registry: Registry) -> None:
    registry.add_permission(*PERMISSIONS)
    registry.add_role(
        RoleSpec(
            "dispatcher",
            "Command-centre dispatcher",
            (
                "orgs.read",
                "users.read",
                "linkage.read",
                "linkage.intake",
                "linkage.dispatch",
                "linkage.verify",
                "linkage.supervise",
                "linkage.reveal",
                "linkage.reward",
            ),
            data_scope="all",
        ),
        RoleSpec(
            "handler",
            "Department case handler",
            ("orgs.read", "linkage.read", "linkage.handle"),
        ),
    )
    registry.grant(
        "leader",
        "linkage.read",
        "linkage.calendar",
        "linkage.configure",
        "linkage.supervise",
        "linkage.reward.approve",
    )
    registry.grant("staff", "linkage.read")
    registry.grant("grid_worker", "linkage.read", "linkage.patrol", "linkage.verify")
    registry.add_api_router(routes.router)
    registry.add_api_router(routes_cases.router)
    registry.add_api_router(open311.router)
    registry.add_api_router(routes_kpi.api)
    registry.add_api_router(routes_rewards.router)
    registry.add_page_router(routes_kpi.pages)
    registry.add_page_router(pages.router)
    registry.add_layer("cases", CaseLayer())
    registry.add_templates(str(files("yiwang.linkage") / "templates"))
    registry.add_nav(NavItem("kpi", "Case KPIs", "/cases/kpi", permission="linkage.read", order=60))
    registry.add_seed(categories.seed_categories)
    registry.add_warmer(_warm)
    registry.add_seed(rewards.seed_rules)
    registry.add_handler(
        EventHandler(
            "linkage.notify_reporter",
            ("linkage.case.close", "linkage.case.reject"),
            notify.notify_reporter,
        )
    )
    registry.add_handler(
        EventHandler(
            "linkage.case_from_event",
            tuple(f"{prefix}*" for prefix in machine.TOPICS),
            machine.case_from_event,
        )
    )
    registry.add_job(PeriodicJob("linkage.calendar_coverage", 86_400, service.coverage_job))
    registry.add_job(PeriodicJob("linkage.sla", 60, _sla_job))
    registry.add_job(PeriodicJob("linkage.train_classifier", 86_400, suggest.train_job))


async def _warm(session: AsyncSession) -> None:
    """The intake book (categories, matrix, model) and jieba's dictionary."""
    book = await suggest.get_book(session)
    book.classifier.suggest("路灯不亮")
