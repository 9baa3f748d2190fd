"""The plugin registry: each module brings its routers, pages, navigation, permissions, roles,
event handlers, periodic jobs and map layers in its own ``plugin.py``; the web app, the
worker and the map assemble them from here. Adding a job or a layer never edits a central list.

A plugin is a module ``yiwang.<package>.plugin`` with a ``register(registry)`` function, or a
third-party module named by an entry point in the ``yiwang.plugins`` group.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yiwang.core.events.service import Event, HandlerContext
    from yiwang.core.jobs.runner import JobContext


@dataclass(frozen=True)
class Permission:
    name: str
    title: str
    #: For the three administrators' own permissions: "system", "security" or "audit".
    admin_kind: str | None = None


@dataclass(frozen=True)
class RoleSpec:
    name: str
    title: str
    permissions: tuple[str, ...]
    data_scope: str = "subtree"
    admin_kind: str | None = None
    requires_2fa: bool = False


@dataclass(frozen=True)
class NavItem:
    key: str
    title: str
    href: str
    #: Shown only to users holding this permission (None: every signed-in user).
    permission: str | None = None
    order: int = 100


HandlerFunc = Callable[["HandlerContext", "Event"], Awaitable[None]]
JobFunc = Callable[["JobContext"], Awaitable[None]]


@dataclass(frozen=True)
class EventHandler:
    name: str
    #: Exact topics, or prefixes ending in "*" ("iot.alert.*").
    topics: tuple[str, ...]
    func: HandlerFunc
    max_attempts: int | None = None

    def matches(self, topic: str) -> bool:
        return any(topic.startswith(t[:-1]) if t.endswith("*") else topic == t for t in self.topics)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: int
    func: JobFunc


@dataclass
class Registry:
    plugins: list[str] = field(default_factory=list)
    permissions: dict[str, Permission] = field(default_factory=dict)
    roles: dict[str, RoleSpec] = field(default_factory=dict)
    api_routers: list[Any] = field(default_factory=list)
    page_routers: list[Any] = field(default_factory=list)
    nav: list[NavItem] = field(default_factory=list)
    handlers: dict[str, EventHandler] = field(default_factory=dict)
    jobs: dict[str, PeriodicJob] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    #: folders of Jinja templates that modules bring (searched before the shell's own)
    template_dirs: list[str] = field(default_factory=list)
    #: reference data a module needs in every database (run by ``yiwang init``; idempotent)
    seeders: list[Any] = field(default_factory=list)
    #: ``async f(session)`` loading a module's in-memory caches before the first request
    #: needs them (run by a serving process at start; failures are logged, not fatal)
    warmers: list[Any] = field(default_factory=list)

    def add_permission(self, *perms: Permission) -> None:
        for perm in perms:
            self.permissions[perm.name] = perm

    def add_role(self, *roles: RoleSpec) -> None:
        for role in roles:
            self.roles[role.name] = role

    def grant(self, role: str, *permissions: str) -> None:
        """Add a module's permissions to a role another plugin defined (core's built-in
        roles, for instance); plugins register after core, so the role exists."""
        spec = self.roles[role]
        merged = tuple(dict.fromkeys((*spec.permissions, *permissions)))
        self.roles[role] = dataclasses.replace(spec, permissions=merged)

    def add_api_router(self, router: Any) -> None:
        self.api_routers.append(router)

    def add_page_router(self, router: Any) -> None:
        self.page_routers.append(router)

    def add_nav(self, *items: NavItem) -> None:
        self.nav.extend(items)
        self.nav.sort(key=lambda item: item.order)

    def add_handler(self, handler: EventHandler) -> None:
        if handler.name in self.handlers:
            raise ValueError(f"event handler {handler.name!r} is registered twice")
        self.handlers[handler.name] = handler

    def remove_handler(self, name: str) -> None:
        self.handlers.pop(name, None)

    def add_job(self, job: PeriodicJob) -> None:
        if job.name in self.jobs:
            raise ValueError(f"job {job.name!r} is registered twice")
        self.jobs[job.name] = job

    def add_seed(self, func: Any) -> None:
        """``async func(session, settings)``: create missing reference rows, keep edited ones."""
        self.seeders.append(func)

    def add_warmer(self, func: Any) -> None:
        self.warmers.append(func)

    def add_templates(self, folder: str) -> None:
        self.template_dirs.append(folder)

    def add_layer(self, name: str, layer: Any) -> None:
        self.layers[name] = layer

    def handlers_for(self, topic: str) -> list[EventHandler]:
        return [h for h in self.handlers.values() if h.matches(topic)]


def _discover() -> list[Any]:
    import yiwang

    modules = []
    for info in sorted(pkgutil.iter_modules(yiwang.__path__), key=lambda i: i.name != "core"):
        if not info.ispkg:
            continue
        try:
            modules.append(importlib.import_module(f"yiwang.{info.name}.plugin"))
        except ModuleNotFoundError as exc:
            if exc.name != f"yiwang.{info.name}.plugin":
                raise
    for ep in entry_points(group="yiwang.plugins"):
        modules.append(ep.load())
    return modules


@lru_cache
def get_registry() -> Registry:
    """The registry of this process, built once from every plugin found."""
    registry = Registry()
    for module in _discover():
        module.register(registry)
        registry.plugins.append(module.__name__)
    return registry
