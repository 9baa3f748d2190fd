"""Jinja2 templates with the message catalogue: ``_()`` in a template is the request's
language; templates hold no user-facing text of their own."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from yiwang import __version__
from yiwang.core import i18n
from yiwang.core.timeutil import format_local

if TYPE_CHECKING:
    from yiwang.web.context import Ctx


class Templates:
    def __init__(self, extra_dirs: list[str] | None = None) -> None:
        dirs = [*(extra_dirs or []), str(files("yiwang") / "web" / "templates")]
        self.env = Environment(
            loader=FileSystemLoader(dirs), autoescape=select_autoescape(), enable_async=False
        )
        self.env.filters["localtime"] = format_local
        self.env.globals["version"] = __version__
        self.env.globals["languages"] = i18n.LANGUAGES

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        from yiwang.web.context import apply_cookies

        ctx = getattr(request.state, "ctx", None)
        lang = ctx.lang if ctx is not None else request.app.state.settings.default_language
        values: dict[str, Any] = {
            "request": request,
            "_": i18n.translator(lang),
            "lang": lang,
            "ctx": ctx,
            "settings": request.app.state.settings,
            "principal": ctx.principal if ctx is not None and ctx.signed_in else None,
            "csrf_token": ctx.csrf_token() if ctx is not None else "",
        }
        if ctx is not None and ctx.signed_in:
            values["nav"] = [
                item
                for item in request.app.state.registry.nav
                if item.permission is None or ctx.principal.has(item.permission)
            ]
        values.update(context or {})
        html = self.env.get_template(name).render(values)
        response = HTMLResponse(html, status_code=status_code)
        if ctx is not None:
            apply_cookies(ctx, response)
        return response


def render_page(ctx: Ctx, name: str, status: int = 200, **values: object) -> HTMLResponse:
    """Render a page for a request context (the pages' one way to answer with HTML)."""
    templates: Templates = ctx.request.app.state.templates
    return templates.render(ctx.request, name, values, status_code=status)
