"""Configuration, from environment variables and an optional ``.env`` file.

Every setting is an environment variable named ``HUIYIN_<FIELD>`` (upper case), except the two URLs that
deployment tools conventionally set without a prefix: ``DATABASE_URL`` and ``REDIS_URL`` (the prefixed
names work too). Unset, everything falls back to the embedded defaults: a SQLite file under
``HUIYIN_DATA_DIR``, an in-process Redis (fakeredis), the embedded NLU. ``huiyin serve --help`` prints
this list with descriptions, generated from the fields below, so the field descriptions are the docs.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUIYIN_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- where things live -------------------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for the embedded SQLite database, uploaded photos and caches.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "HUIYIN_DATABASE_URL"),
        description=(
            "SQLAlchemy URL of the database, e.g. postgresql+asyncpg://user@127.0.0.1:5432/huiyin. "
            "Unset: a SQLite file <data_dir>/huiyin.db."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "HUIYIN_REDIS_URL"),
        description=(
            "Redis URL for conversation state, locks and dedup, e.g. redis://127.0.0.1:6379/0. "
            "Unset: an in-process Redis; half-finished dialogs are restored from the database at start-up."
        ),
    )
    auto_migrate: bool = Field(
        default=True, description="Apply database migrations (alembic upgrade head) at start-up."
    )

    # --- HTTP --------------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Listen address of `huiyin serve`.")
    port: int = Field(default=8080, ge=1, le=65535, description="Listen port of `huiyin serve`.")
    max_text_chars: int = Field(
        default=2000, ge=1, description="Longest message text accepted; longer is refused with 413."
    )

    # --- the bot -----------------------------------------------------------------------------------
    bot_name: str = Field(default="回音", description="The bot's name; saying it in a group addresses it.")
    bot_aliases: list[str] = Field(
        default_factory=lambda: ["小回", "huiyin"],
        description="Other names that address the bot in a group (JSON list).",
    )
    default_community: str = Field(
        default="demo", description="Community code for chats not yet bound to a community."
    )
    group_listen_default: bool = Field(
        default=False,
        description=(
            "Whether a new group starts in listen mode, where the bot may offer help on a likely appeal "
            "with one short line even when not addressed."
        ),
    )
    listen_offer_cooldown_s: int = Field(
        default=600, ge=0, description="At most one listen-mode offer per resident per group in this time."
    )
    dialog_idle_timeout_s: int = Field(
        default=1800, ge=30, description="A half-finished dialog expires after this many idle seconds."
    )
    appeal_id_prefix: str = Field(
        default="HY", description="Prefix of readable appeal ids (HY-YYYYMMDD-NNNN)."
    )
    timezone: str = Field(default="Asia/Shanghai", description="Time zone for appeal ids and replies.")
    first_response_hours: int = Field(
        default=24, ge=1, description="Hours within which an appeal's first response is due (SLA)."
    )

    # --- concurrency and dedup ---------------------------------------------------------------------
    dedup_ttl_s: int = Field(
        default=86400, ge=60, description="How long a platform message id is remembered for dedup."
    )
    lock_timeout_s: float = Field(
        default=30.0, gt=0, description="A conversation lock expires after this long if its holder died."
    )
    lock_wait_s: float = Field(
        default=20.0, gt=0, description="How long a message waits for its conversation's lock."
    )

    # --- understanding -----------------------------------------------------------------------------
    nlu: Literal["embedded", "rasa"] = Field(
        default="embedded", description="Understanding backend: embedded (default) or rasa."
    )
    rasa_url: str = Field(
        default="http://127.0.0.1:5005",
        description="Base URL of the Rasa NLU service (with HUIYIN_NLU=rasa).",
    )
    rasa_timeout_s: float = Field(default=2.0, gt=0, description="Timeout of one Rasa /model/parse call.")

    # --- logging -----------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    log_json: bool = Field(default=False, description="Log as JSON lines instead of console text.")

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the URLs deployment tools hand out and pick the async drivers.
            if url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url[len("postgres://") :]
            elif url.startswith("postgresql://"):
                url = "postgresql+asyncpg://" + url[len("postgresql://") :]
            elif url.startswith("sqlite:///"):
                url = "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'huiyin.db').resolve()}"

    @property
    def bot_names(self) -> tuple[str, ...]:
        return (self.bot_name, *self.bot_aliases)


def settings_help() -> str:
    """A plain-text table of every setting: variable, default, description. Used by ``--help``."""
    lines = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"HUIYIN_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        lines.append(f"{var} (default: {default!s})\n    {field.description}")
    return "\n".join(lines)
