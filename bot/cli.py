"""The ``huiyin`` command: serve, chat, route, kb check, db upgrade."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from bot.admin import admin
from bot.nlu.route import route_command
from bot.settings import Settings, settings_help
from kb.check import check_command


def _settings_epilog() -> str:
    # "\b" keeps click from re-wrapping the table.
    lines = ["\b", "Settings (environment variables, or a .env file in the working directory):"]
    for block in settings_help().split("\n"):
        lines.append(block)
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
def main() -> None:
    """回音 huiyin: the chatbot front door of a community appeals system."""


@main.command(epilog=_settings_epilog())
@click.option("--host", default=None, help="Listen address (overrides HUIYIN_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (overrides HUIYIN_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP app: channels' webhooks, the web chat page at /, /healthz and /readyz.

    With no settings it runs on embedded defaults: a SQLite file under ~/.local/share/huiyin, an in-process Redis and
    the embedded NLU. Open http://127.0.0.1:8080/ to try the web chat.
    """
    import uvicorn

    from bot.app import create_app
    from bot.logs import configure_logging

    settings = Settings()
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, json=settings.log_json)
    click.echo(f"huiyin: web chat at http://{settings.host}:{settings.port}/", err=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # uvicorn's records (a failed request's traceback) go through ours, which mask phone numbers.
        log_config=None,
        access_log=False,
        lifespan="on",
        # X-Forwarded-For only from HUIYIN_TRUSTED_PROXIES (uvicorn alone would believe any loopback peer).
        forwarded_allow_ips=[str(net) for net in settings.trusted_proxies],
    )


@main.command()
@click.option(
    "--group",
    "group_title",
    default="幸福里3栋业主群",
    show_default=True,
    help="Name of the simulated group.",
)
@click.option("--as", "speaker", default="王阿姨", show_default=True, help="Who speaks first.")
def chat(group_title: str, speaker: str) -> None:
    """Chat with the bot in the terminal, as several residents of one group.

    \b
    Lines are sent to the group as the current resident. Start a line with @回音 to address the bot.
    :as NAME       speak as another resident (created on first use)
    :private       switch to the current resident's private chat with the bot
    :group         switch back to the group
    :who           show who is speaking where
    :quit          leave (or Ctrl-D)
    A number answers the buttons of the bot's last message.
    """
    from bot.logs import configure_logging
    from bot.terminal import run_terminal_chat

    settings = Settings()
    configure_logging("warning")
    asyncio.run(run_terminal_chat(settings, group_title=group_title, speaker=speaker))


@main.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (for cron or a check).")
def worker(once: bool) -> None:
    """Run the forwarder alone: send confirmed appeals to the city's case backend, poll it for status
    changes, deliver notifications, flag overdue appeals. Several workers may run at once.

    `huiyin serve` runs one inside it too; set HUIYIN_FORWARDER=false there when workers do the job.
    The backend is chosen per community (HUIYIN_BACKEND, HUIYIN_OPEN311_*, HUIYIN_BACKEND_WEBHOOK_*,
    HUIYIN_BACKEND_COMMUNITIES): see `huiyin serve --help` and docs/backend.md.
    """
    from bot.logs import configure_logging
    from integrations.backend.forwarder import run_worker

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    sent = asyncio.run(run_worker(settings, once=once))
    if once:
        click.echo(f"delivered {sent}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to the configured database (DATABASE_URL or the embedded SQLite file)."""
    from bot.db.session import Database

    async def run() -> None:
        settings = Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.effective_database_url)
        await database.migrate()
        await database.dispose()

    asyncio.run(run())
    click.echo("database is up to date")


@main.group()
def kb() -> None:
    """The knowledge base ("这事该找谁")."""


kb.add_command(check_command, name="check")
main.add_command(route_command, name="route")
main.add_command(admin, name="admin")
