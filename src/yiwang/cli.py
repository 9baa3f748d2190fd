"""The ``yiwang`` command. Every subcommand runs without prompts, so scripts can drive it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import string
import sys
import webbrowser
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from yiwang import __version__
from yiwang.core.settings import Settings

app = typer.Typer(
    help="Yiwang (一网): the district digital governance centre platform.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(
    help="User accounts (as the platform itself, audited).", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
address_app = typer.Typer(
    help="Standard addresses: matching files of free text.", no_args_is_help=True
)
app.add_typer(address_app, name="address")

T = TypeVar("T")
HostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="Address to listen on; repeat for several. '::' is IPv4 and IPv6 on every "
        "interface; 'localhost' is 127.0.0.1 and ::1.",
    ),
]


def _settings() -> Settings:
    return Settings()


def _run_db(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    from yiwang.core.db import Database

    async def main() -> T:
        db = Database(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"yiwang {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Yiwang (一网) command line."""


@app.command()
def init() -> None:
    """Create or upgrade the database and seed the built-in roles and the district node."""
    from yiwang.core.bootstrap import initialise

    settings = _settings()
    initialise(settings)
    typer.echo(f"database ready: {settings.effective_database_url.split('@')[-1]}")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply the Alembic migrations up to REVISION."""
    from yiwang.core.migrate import upgrade

    upgrade(_settings(), revision)
    typer.echo(f"database at {revision}")


@app.command()
def serve(
    host: HostOpt = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run events and jobs in this process (default: YIWANG_RUN_WORKER_IN_SERVER).",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port (about one per CPU core); restarted "
            "if one dies. Events and jobs run in the first only.",
        ),
    ] = 1,
) -> None:
    """Serve the web app and API."""
    from yiwang.serve import run

    run(_settings(), host or ["::"], port, start_worker=worker, processes=processes)


@app.command("worker")
def worker_cmd() -> None:
    """Run event handlers and periodic jobs until stopped (SIGINT/SIGTERM)."""
    import signal

    from yiwang.core.db import Database
    from yiwang.core.plugins import get_registry
    from yiwang.core.worker import Worker
    from yiwang.web.logs import configure

    settings = _settings()
    configure(settings.log_level, settings.log_json)

    async def main() -> None:
        db = Database(settings)
        w = Worker(db, settings, get_registry())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        try:
            await w.run()
        finally:
            await db.dispose()

    asyncio.run(main())


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A progress display for the demo build: a spinner and the step, with elapsed time."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("building the demo district", total=None)

        def step(name: str) -> None:
            bar.update(task, description=f"building the demo district: {name}")

        yield step
        bar.update(task, description="demo district built", total=1, completed=1)


def _demo_password(rng: random.Random) -> str:
    body = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))
    return "Yw-" + body + "7a"


@app.command()
def demo(
    host: HostOpt = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the generated district.")] = 7,
    scale: Annotated[
        str,
        typer.Option(
            help="Size of the district: 'small' (starts in well under a minute) or 'full' "
            "(the real district's numbers: 102,000 addresses and about 4,000,000 records).",
        ),
    ] = "small",
    browser: Annotated[
        bool, typer.Option("--browser/--no-browser", help="Open the browser.")
    ] = True,
) -> None:
    """Build the demo district (under ./var unless YIWANG_VAR_DIR says otherwise), print the
    sign-in details and serve it."""
    from yiwang.core.bootstrap import initialise
    from yiwang.demo import build_demo

    settings = _settings()
    if not settings.database_url and "YIWANG_COOKIE_SECURE" not in os.environ:
        # The demo is served over plain HTTP; loopback is a secure context for browsers,
        # but a colleague opening it by the machine's address would lose the cookie.
        settings.cookie_secure = False
    if "YIWANG_SMS_SENDER" not in os.environ:
        settings.sms_sender = "file"  # no gateway: the codes citizens need land in a file
    initialise(settings)
    from yiwang.demo import SCALES

    if scale not in SCALES:
        raise typer.BadParameter(f"choose one of {', '.join(SCALES)}", param_hint="--scale")
    rng = random.Random(seed)
    with _progress() as step:
        logins = _run_db(
            settings,
            lambda db: build_demo(
                db,
                settings,
                seed=seed,
                password=lambda: _demo_password(rng),
                progress=step,
                scale=scale,
            ),
        )
    # Loopback on both stacks, whatever /etc/hosts says "localhost" is.
    hosts = host or ["127.0.0.1", "::1"]
    shown = hosts[0] if hosts[0] not in ("::", "0.0.0.0", "localhost", "") else "127.0.0.1"
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/map"
    typer.echo(f"\nYiwang demo district ready at {url}\n")
    for username, password, note in logins:
        typer.echo(f"  {username:<10} {password:<18} {note}")
    typer.echo("\nAdministrators enrol an authenticator app (TOTP) at first sign-in.")
    if settings.sms_sender == "file":
        outbox = settings.var_dir / "sms-outbox.jsonl"
        typer.echo(
            f"Citizens report at {url.rsplit('/', 1)[0]}/report; text messages go to {outbox}."
        )
    typer.echo("")
    if browser:
        webbrowser.open(url)
    from yiwang.serve import run

    run(settings, hosts, port)


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    org: Annotated[str, typer.Option(help="Code of the user's org node.")],
    password: Annotated[str | None, typer.Option(help="Initial password.")] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="Read the password from this file (first line) instead.")
    ] = None,
    role: Annotated[list[str] | None, typer.Option(help="Role name; repeat for several.")] = None,
    display_name: Annotated[str, typer.Option(help="Name shown in the UI.")] = "",
) -> None:
    """Create a user."""
    from yiwang.core.auth import service as users
    from yiwang.core.auth.principal import Principal
    from yiwang.core.errors import DomainError

    settings = _settings()
    secret = _password(password, password_file)

    async def work(db: object) -> int:
        from yiwang.core.db import Database

        assert isinstance(db, Database)
        async with db.session() as session:
            user = await users.create_user(
                session,
                settings,
                Principal.system("cli"),
                users.UserCreate(username, secret, org, display_name, tuple(role or ())),
            )
            return user.id

    try:
        user_id = _run_db(settings, work)
    except DomainError as exc:
        _fail(exc)
    typer.echo(f"user {username} created (id {user_id})")


def _password(password: str | None, password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").splitlines()[0]
    if password is None:
        typer.echo("error: give --password or --password-file", err=True)
        raise typer.Exit(2)
    return password


def _fail(exc: Exception) -> None:
    field = getattr(exc, "field", None)
    typer.echo(f"error: {exc}" + (f" (field: {field})" if field else ""), err=True)
    raise typer.Exit(1)


@user_app.command("reset-password")
def user_reset_password(
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str | None, typer.Option(help="New password.")] = None,
    password_file: Annotated[Path | None, typer.Option(help="Read it from this file.")] = None,
) -> None:
    """Set a new password and unlock the account."""
    from yiwang.core.auth import service as users
    from yiwang.core.auth.principal import Principal
    from yiwang.core.db import Database
    from yiwang.core.errors import DomainError

    settings = _settings()
    secret = _password(password, password_file)

    async def work(db: Database) -> None:
        async with db.session() as session:
            user = await users.get_user_by_name(session, username)
            await users.reset_password(session, settings, Principal.system("cli"), user.id, secret)

    try:
        _run_db(settings, work)
    except DomainError as exc:
        _fail(exc)
    typer.echo(f"password of {username} reset")


@user_app.command("roles")
def user_roles(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[
        list[str] | None, typer.Option(help="Role name; repeat for several; none clears them.")
    ] = None,
) -> None:
    """Replace a user's roles. The only way to grant or remove the three administrators'
    roles (sysadmin, secadmin, auditadmin): the web leaves them to the platform operator."""
    from yiwang.core.auth import service as users
    from yiwang.core.auth.principal import Principal
    from yiwang.core.db import Database
    from yiwang.core.errors import DomainError

    settings = _settings()

    async def work(db: Database) -> None:
        async with db.session() as session:
            user = await users.get_user_by_name(session, username)
            await users.set_roles(session, Principal.system("cli"), user.id, role or [])

    try:
        _run_db(settings, work)
    except DomainError as exc:
        _fail(exc)
    typer.echo(f"roles of {username}: {', '.join(role or []) or '(none)'}")


@user_app.command("disable")
def user_disable(username: Annotated[str, typer.Option(help="Login name.")]) -> None:
    """Disable a user: their sessions and tokens end at once."""
    from yiwang.core.auth import service as users
    from yiwang.core.auth.principal import Principal
    from yiwang.core.db import Database
    from yiwang.core.errors import DomainError

    settings = _settings()

    async def work(db: Database) -> None:
        async with db.session() as session:
            user = await users.get_user_by_name(session, username)
            await users.set_active(session, Principal.system("cli"), user.id, False)

    try:
        _run_db(settings, work)
    except DomainError as exc:
        _fail(exc)
    typer.echo(f"user {username} disabled")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole SM3 chain; exit 1 and name the first broken record if it is broken."""
    from yiwang.core.audit import service as audit
    from yiwang.core.db import Database

    async def work(db: Database) -> audit.VerifyResult:
        async with db.session(readonly=True) as session:
            return await audit.verify(session)

    result = _run_db(_settings(), work)
    if result.ok:
        typer.echo(
            f"audit chain intact: {result.checked} records, head {result.head_seq} "
            f"{result.head_hash}"
        )
        return
    typer.echo(
        f"audit chain BROKEN at record {result.broken_seq}: {result.reason} "
        f"({result.checked} records verified before it)",
        err=True,
    )
    sys.exit(1)


@address_app.command("match")
def address_match(
    source: Annotated[Path, typer.Argument(help="A .txt file (one address per line) or a .csv.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the CSV (default: stdout)."),
    ] = None,
    column: Annotated[
        str, typer.Option(help="The CSV column holding the address text.")
    ] = "address",
) -> None:
    """Match every address in a file to the standard address, writing a CSV with the code,
    the standard name, the score, the grid and the elements read from the text. Lines that
    match nothing keep empty columns; the exit code is 0 either way, 2 for an unreadable file."""
    import csv
    import io

    from yiwang.basedata import address_match as matching
    from yiwang.basedata.locator import get_locator

    try:
        raw = source.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {source}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="replace")
    if source.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if column not in (reader.fieldnames or []):
            typer.echo(f"{source} has no column {column!r}", err=True)
            raise typer.Exit(2)
        rows = list(reader)
        fields = list(reader.fieldnames or [])
    else:
        rows = [{column: line.strip()} for line in text.splitlines() if line.strip()]
        fields = [column]
    settings = _settings()

    async def work(db: Any) -> list[Any]:
        async with db.session(readonly=True) as session:
            index = await matching.get_index(session)
            locator = await get_locator(session)
            results = index.match_many([r.get(column) or "" for r in rows])
            return [(r, locator.labels.get(r.grid_id or 0) if r else None) for r in results]

    matched = _run_db(settings, work)
    extra = [
        "match_kind",
        "match_code",
        "match_name",
        "match_score",
        "grid_code",
        "lon",
        "lat",
        "elements",
    ]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=[*fields, *extra])
    writer.writeheader()
    for row, (result, grid) in zip(rows, matched, strict=True):
        values = dict(row)
        if result is not None:
            values.update(
                match_kind=result.kind,
                match_code=result.code,
                match_name=result.name,
                match_score=result.score,
                grid_code=grid.code if grid else "",
                lon=f"{result.lon:.6f}",
                lat=f"{result.lat:.6f}",
                elements=json.dumps(result.elements, ensure_ascii=False),
            )
        writer.writerow(values)
    if output is None:
        typer.echo(out.getvalue(), nl=False)
    else:
        output.write_text("\ufeff" + out.getvalue(), encoding="utf-8")
        found = sum(1 for r, _ in matched if r is not None)
        typer.echo(f"{found} of {len(rows)} addresses matched; written to {output}")


if __name__ == "__main__":
    app()
