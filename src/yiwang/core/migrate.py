"""Running Alembic migrations from code (``yiwang db upgrade``, tests)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from yiwang.core.settings import Settings


def alembic_config(settings: Settings) -> Config:
    ini = files("yiwang") / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(files("yiwang") / "migrations"))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision``. Runs its own event loop: call it from sync code
    (or a thread)."""
    settings.ensure_var_dir()
    command.upgrade(alembic_config(settings), revision)
