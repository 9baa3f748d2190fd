"""Settings, read from ``YIWANG_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

import os
import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets read from files, by (var_dir, name) (a cache: the files are the truth). Keyed by
#: text: the data key is asked for on every intake, where joining paths showed in profiles.
_SECRETS: dict[tuple[str, str], str] = {}


def _default_var_dir() -> Path:
    return Path.cwd() / "var"


class Settings(BaseSettings):
    """Every setting of a Yiwang process. Defaults run a local district from SQLite."""

    model_config = SettingsConfigDict(env_prefix="YIWANG_", env_file=".env", extra="ignore")

    var_dir: Path = Field(default_factory=_default_var_dir)
    #: SQLAlchemy URL. Empty means SQLite at ``var_dir/yiwang.sqlite3``.
    database_url: str = ""
    database_echo: bool = False
    #: "inline" runs SQLite calls on the event loop (fast; see core/sqlite_inline.py),
    #: "thread" through aiosqlite's thread.
    sqlite_driver: Literal["inline", "thread"] = "inline"
    database_pool_size: int = 20

    #: Secret for CSRF tokens and other MACs. Set it in production; the default is
    #: generated once and kept in ``var_dir/secret.key`` so restarts keep sessions valid.
    secret_key: SecretStr | None = None
    #: SM4 key (32 hex digits) for personal data and TOTP secrets at rest.
    data_key: SecretStr | None = None

    district_code: str = "320117"
    district_name: str = "溧水区"

    #: An optional raster base map under the district's own layers: an XYZ tile URL template
    #: with {z}/{x}/{y}, e.g. 天地图's WMTS in KVP form with the customer's key
    #: (``https://t0.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&
    #: LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&
    #: TILECOL={x}&tk=KEY``). Empty: no base map, nothing is loaded from outside.
    map_raster_url: str = ""
    #: Base-data changes from the field are applied at once (True) or wait for the grid's
    #: community to approve them (False, the default).
    basedata_direct_updates: bool = False
    map_raster_attribution: str = ""
    default_language: Literal["zh_CN", "en"] = "zh_CN"

    # Accounts (GB/T 22239 level 3 controls).
    password_min_length: int = 10
    password_min_classes: int = 3
    password_history: int = 5
    password_max_age_days: int = 90
    #: argon2id cost; the defaults follow RFC 9106's second recommended profile.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    lockout_threshold: int = 5
    lockout_window_minutes: int = 15
    lockout_minutes: int = 15
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    cookie_secure: bool = True
    totp_issuer: str = "Yiwang"

    # Events and jobs.
    #: Run event dispatch and periodic jobs inside ``yiwang serve``. Claims go through the
    #: database, so this is safe with several servers; turn it off when ``yiwang worker``
    #: processes do the work.
    run_worker_in_server: bool = True
    event_max_attempts: int = 5
    event_retry_base_seconds: float = 2.0
    worker_poll_seconds: float = 0.5
    job_lease_seconds: int = 300

    # Cases (linkage).
    #: the share of a case's time limit after which its light turns yellow
    linkage_warn_share: float = Field(0.8, gt=0, lt=1)
    #: days after closure in which a reporter may reopen a case (返工)
    linkage_reopen_days: int = Field(15, ge=0, le=365)
    #: how far (metres) a verifier may stand from the reported place
    linkage_verify_radius_m: float = Field(300.0, gt=0)
    #: how text messages leave: "log" (written to the log), "file" (var_dir/sms-outbox.jsonl),
    #: "record" (kept in memory, for tests) or "module:attribute" naming your gateway's sender
    sms_sender: str = "log"

    #: Proxies whose X-Forwarded-For we believe (nginx on the same host by default).
    trusted_proxies: str = "127.0.0.1,::1,::ffff:127.0.0.1"

    log_level: str = "INFO"
    log_json: bool = True

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / 'yiwang.sqlite3'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def ensure_var_dir(self) -> Path:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return self.var_dir

    def _persistent_secret(self, name: str, nbytes: int) -> str:
        """A generated secret kept in ``var_dir``: created once, atomically and private
        (two processes starting together agree on one value), then cached."""
        key = (str(self.var_dir), name)
        cached = _SECRETS.get(key)
        if cached is not None:
            return cached
        path = self.var_dir / name
        self.ensure_var_dir()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # the creator may still be writing
                value = path.read_text().strip()
                if value:
                    break
                time.sleep(0.01)
        else:
            value = secrets.token_hex(nbytes)
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
        _SECRETS[key] = value
        return value

    def secret_key_value(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return self._persistent_secret("secret.key", 32)

    def data_key_bytes(self) -> bytes:
        if self.data_key is not None:
            return bytes.fromhex(self.data_key.get_secret_value())
        return bytes.fromhex(self._persistent_secret("data.key", 16))


@lru_cache
def get_settings() -> Settings:
    return Settings()
