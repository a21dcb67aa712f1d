"""Configuration, from environment variables and an optional ``.env`` file.

Every setting is an environment variable named ``HUIYIN_<FIELD>`` (upper case), except the two URLs that
deployment tools conventionally set without a prefix: ``DATABASE_URL`` and ``REDIS_URL`` (the prefixed
names work too). Unset, everything falls back to the embedded defaults: a SQLite file under
``HUIYIN_DATA_DIR``, an in-process Redis (fakeredis), the embedded NLU. ``huiyin serve --help`` prints
this list with descriptions, generated from the fields below, so the field descriptions are the docs.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kb.model import Open311Services


class CommunityBackend(BaseModel):
    """One community's case backend, from ``HUIYIN_BACKEND_COMMUNITIES``; unset fields fall back to the
    global backend settings (``HUIYIN_OPEN311_*``, ``HUIYIN_BACKEND_WEBHOOK_*``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["open311", "webhook", "none"]
    url: str | None = None
    api_key: SecretStr | None = None
    jurisdiction: str | None = None
    service_codes: dict[str, str] = Field(default_factory=dict)
    default_service_code: str | None = None
    # Open311: service codes by KB matter, category and a default; wins over the community's profile.
    services: Open311Services | None = None
    # Open311: whether the server takes updates (servicerequestupdates.json); unset: HUIYIN_OPEN311_UPDATES.
    updates: bool | None = None
    secret: SecretStr | None = None


def default_data_dir() -> Path:
    """Per-user data folder, independent of the working directory (``huiyin route`` runs anywhere)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "huiyin"


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
        default_factory=lambda: default_data_dir(),
        description=(
            "Folder for the embedded SQLite database, downloaded photos and caches "
            "(default: $XDG_DATA_HOME/huiyin, i.e. ~/.local/share/huiyin)."
        ),
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
        default="HY",
        description=(
            "Prefix of readable appeal ids (HY-YYYYMMDD-NNNN). Deployments that share a city backend may "
            "each have their own; what the backend sees is qualified by HUIYIN_INSTANCE_ID anyway."
        ),
    )
    instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]{1,32}$",
        description=(
            "This deployment's id (1-32 of A-Z a-z 0-9 -), part of every reference and idempotency key "
            "sent to a case backend, so that appeals of two deployments never meet as one case. Unset: a "
            "random one is made once and kept in the database (table instance_setting)."
        ),
    )
    timezone: str = Field(default="Asia/Shanghai", description="Time zone for appeal ids and replies.")
    public_url: str | None = Field(
        default=None,
        description=(
            "The address residents and backends reach this server at (https://huiyin.example.cn), for links "
            "the bot sends (the privacy page). Unset: http://<host>:<port>."
        ),
    )
    first_response_hours: int = Field(
        default=24, ge=1, description="Hours within which an appeal's first response is due (SLA)."
    )

    # --- concurrency and dedup ---------------------------------------------------------------------
    dedup_ttl_s: int = Field(
        default=86400, ge=60, description="How long a platform message id is remembered for dedup."
    )
    lock_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "A conversation lock's expiry: its holder renews it every third of this while the turn runs, "
            "so a lock whose process died is free after at most this long."
        ),
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

    # --- platforms: Telegram, WeChat Official Account, WeCom (see docs/platforms.md) ---------------
    telegram_token: SecretStr | None = Field(
        default=None, description="Telegram bot token from @BotFather. Setting it switches Telegram on."
    )
    telegram_mode: Literal["webhook", "polling"] = Field(
        default="polling",
        description=(
            "How updates arrive: polling (asks Telegram, no public URL needed; for small setups) or "
            "webhook (Telegram posts to /webhooks/telegram/webhook; needs HUIYIN_TELEGRAM_SECRET)."
        ),
    )
    telegram_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Webhook secret token (1-256 of A-Z a-z 0-9 _ -). Telegram sends it in "
            "X-Telegram-Bot-Api-Secret-Token; requests without it are refused with 403. Required in webhook mode."
        ),
    )
    telegram_webhook_url: str | None = Field(
        default=None,
        description=(
            "Public HTTPS URL of /webhooks/telegram/webhook. When set in webhook mode, huiyin registers it "
            "with Telegram (setWebhook) at start-up."
        ),
    )
    telegram_api_base: str = Field(
        default="https://api.telegram.org",
        description="Bot API server, e.g. a local telegram-bot-api server (files under <base>/file/bot<token>/).",
    )
    telegram_rate_per_s: float = Field(
        default=30.0, ge=0, description="Most messages the bot sends per second overall (0: no limit)."
    )
    telegram_group_rate_per_min: float = Field(
        default=20.0, ge=0, description="Most messages the bot sends into one group per minute (0: no limit)."
    )
    wechat_token: SecretStr | None = Field(
        default=None,
        description="WeChat Official Account server Token (服务器配置 · 令牌). Setting it switches WeChat on.",
    )
    wechat_app_id: str | None = Field(
        default=None, description="WeChat Official Account AppID (for safe mode and the send API)."
    )
    wechat_app_secret: SecretStr | None = Field(
        default=None,
        description="WeChat Official Account AppSecret, for the access token of the customer-service API.",
    )
    wechat_aes_key: SecretStr | None = Field(
        default=None,
        description="EncodingAESKey (43 characters). When set, safe-mode (AES) callbacks are accepted and answered.",
    )
    wechat_api_base: str = Field(
        default="https://api.weixin.qq.com", description="WeChat API server (tests point it at a local one)."
    )
    wechat_reply_deadline_s: float = Field(
        default=4.0,
        gt=0,
        le=4.8,
        description=(
            "How long a callback waits for the answer to reply with it; a later answer goes through the "
            "customer-service API (WeChat gives up after 5 s). WeChat hears 'success' once the message "
            "is stored, 503 when it could not be (it then delivers the message again)."
        ),
    )
    wecom_corp_id: str | None = Field(default=None, description="WeCom CorpID (我的企业 · 企业ID).")
    wecom_agent_id: int | None = Field(default=None, description="WeCom self-built app AgentId.")
    wecom_secret: SecretStr | None = Field(
        default=None, description="WeCom self-built app Secret, for the access token of the app message API."
    )
    wecom_token: SecretStr | None = Field(
        default=None,
        description="Token of the self-built app's callback (接收消息 · API接收). Switches app callbacks on.",
    )
    wecom_aes_key: SecretStr | None = Field(
        default=None, description="EncodingAESKey of the self-built app's callback (43 characters)."
    )
    wecom_robot_token: SecretStr | None = Field(
        default=None,
        description="Token of the intelligent group robot's API-mode callback. Switches robot callbacks on.",
    )
    wecom_robot_aes_key: SecretStr | None = Field(
        default=None, description="EncodingAESKey of the intelligent group robot's callback (43 characters)."
    )
    wecom_staff_webhook: SecretStr | None = Field(
        default=None,
        description=(
            "Group robot (消息推送) webhook URL of the staff group, "
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..., for notifications to staff."
        ),
    )
    wecom_api_base: str = Field(
        default="https://qyapi.weixin.qq.com", description="WeCom API server (tests point it at a local one)."
    )
    wecom_reply_deadline_s: float = Field(
        default=4.0,
        gt=0,
        le=4.8,
        description=(
            "How long a callback waits for the answer to reply with it; a later answer goes through the "
            "app message API or the robot's response_url. WeCom hears an empty answer once the message "
            "is stored, 503 when it could not be."
        ),
    )
    signature_max_age_s: int = Field(
        default=300,
        ge=1,
        description=(
            "WeChat and WeCom callbacks whose signed timestamp is further than this many seconds from now "
            "(either way) are refused with 403: a captured request stops working."
        ),
    )

    # --- the city's case backend (see docs/backend.md) ----------------------------------------------
    backend: Literal["auto", "none", "open311", "webhook"] = Field(
        default="auto",
        description=(
            "Case backend of communities without an entry in HUIYIN_BACKEND_COMMUNITIES: open311, webhook, "
            "none (appeals stay with the community's staff), or auto: open311 when HUIYIN_OPEN311_URL is "
            "set, else webhook when HUIYIN_BACKEND_WEBHOOK_URL is set, else none."
        ),
    )
    backend_communities: dict[str, CommunityBackend] = Field(
        default_factory=dict,
        description=(
            'Per-community backends, a JSON object: community code → {"kind": "open311"|"webhook"|"none", '
            '"url", "api_key", "jurisdiction", "service_codes", "default_service_code", "services": '
            '{"by_matter": {…}, "by_category": {…}, "default": "…"}, "updates", "secret"}; '
            "unset fields fall back to the global settings; services win over the community's profile."
        ),
    )
    open311_url: str | None = Field(
        default=None,
        description="Base URL of an Open311 GeoReport v2 server (where services.json and requests.json live).",
    )
    open311_api_key: SecretStr | None = Field(
        default=None, description="Open311 api_key sent with every request the bot files."
    )
    open311_jurisdiction: str | None = Field(
        default=None, description="Open311 jurisdiction_id, for servers that serve several cities."
    )
    open311_service_codes: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Knowledge-base category or matter id → Open311 service_code (JSON object, e.g. {"repairs": '
            "\"001\"}), for every community; a community's own mapping (its profile's open311.services, "
            "HUIYIN_BACKEND_COMMUNITIES) wins. Appeals nothing maps are matched against the discovered "
            "services' names (logged)."
        ),
    )
    open311_default_service_code: str | None = Field(
        default=None,
        description=(
            "service_code for appeals no matter or category maps to, in communities without a default of "
            "their own (unset: matched by name, else the first discovered service)."
        ),
    )
    open311_updates: bool = Field(
        default=True,
        description=(
            "Send supporters (+1) and ratings to Open311 through the servicerequestupdates.json extension "
            "(mySociety/FixMyStreet); off: they are kept in huiyin only. A server that answers 404, 405 or "
            "501 there is taken as having no updates from then on."
        ),
    )
    backend_webhook_url: str | None = Field(
        default=None, description="URL the signed JSON webhook backend receives appeals and updates at."
    )
    backend_webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Shared secret of the webhook backend: signs what huiyin sends and verifies POST /backend/events "
            "(HMAC-SHA256 over timestamp + '.' + body)."
        ),
    )
    backend_webhook_tolerance_s: int = Field(
        default=300,
        ge=1,
        description="Signed events whose timestamp is further than this from now are refused (replays).",
    )
    backend_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one call to the backend.")
    forwarder: bool = Field(
        default=True,
        description="Run the forwarder inside `huiyin serve` (false when `huiyin worker` processes do it).",
    )
    forwarder_batch: int = Field(default=50, ge=1, description="Outbox rows a forwarder claims at once.")
    forwarder_concurrency: int = Field(
        default=8, ge=1, description="Calls to the backend a forwarder has in flight at once."
    )
    forwarder_idle_s: float = Field(
        default=1.0, gt=0, description="How often an idle forwarder looks for new work."
    )
    forwarder_lease_s: float = Field(
        default=120.0,
        gt=0,
        description="A claimed row whose worker has not finished within this time (it died) is retried.",
    )
    forwarder_max_attempts: int = Field(
        default=8,
        ge=1,
        description="After this many failed deliveries the appeal is flagged to staff; delivery goes on.",
    )
    forwarder_backoff_s: float = Field(
        default=2.0, gt=0, description="First retry delay; doubled on each failure, with jitter."
    )
    forwarder_backoff_max_s: float = Field(
        default=1800.0, gt=0, description="Longest delay between two delivery attempts."
    )
    status_poll_s: float = Field(
        default=300.0,
        gt=0,
        description="How often an open appeal's status is asked from a backend that must be polled (Open311).",
    )
    duplicate_window_days: int = Field(
        default=14,
        ge=0,
        description="Open appeals this recent, at the same place with similar content, are offered to join.",
    )
    announcement_hours: int = Field(
        default=24,
        ge=1,
        description="How long a notice staff post with /announce is answered from, when it names no time.",
    )
    incident_update_minutes: int = Field(
        default=10,
        ge=1,
        description=(
            "An area-wide incident's staff alert is updated as more reports arrive, at most this often "
            "(thresholds per kind: the community profile's case_desk.incidents)."
        ),
    )

    # --- staff: console, handoff, roles (see docs/staff.md) -----------------------------------------
    staff_secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Secret that signs staff console session cookies. Unset: one is generated and kept in "
            "<data_dir>/staff_secret.key; set it when several machines serve the console."
        ),
    )
    staff_session_hours: float = Field(
        default=12.0, gt=0, description="A staff console session ends this many hours after login."
    )
    staff_cookie_secure: bool = Field(
        default=False,
        description="Send the console cookies only over HTTPS (set true behind a TLS-terminating proxy).",
    )
    staff_login_max_failures: int = Field(
        default=5,
        ge=1,
        description=(
            "Failed console logins for one user name (from any address) within "
            "HUIYIN_STAFF_LOGIN_WINDOW_S before further tries for that name are refused."
        ),
    )
    staff_login_window_s: int = Field(
        default=900, ge=1, description="Window of HUIYIN_STAFF_LOGIN_MAX_FAILURES, in seconds."
    )
    staff_login_client_max_failures: int = Field(
        default=20,
        ge=1,
        description=(
            "Failed console logins from one client address (any user names; an IPv6 /64 counts as one) "
            "within HUIYIN_STAFF_LOGIN_CLIENT_WINDOW_S before further tries from it are refused."
        ),
    )
    staff_login_client_window_s: int = Field(
        default=900, ge=1, description="Window of HUIYIN_STAFF_LOGIN_CLIENT_MAX_FAILURES, in seconds."
    )
    staff_login_concurrency: int = Field(
        default=2,
        ge=1,
        description=(
            "Console password checks (argon2, CPU-heavy, off the event loop) running at once per process; "
            "further logins wait their turn, residents' messages do not."
        ),
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed: "
            "the client is then the right-most address in it that is not one of them. Empty (default): "
            "the header is ignored and the connecting address is the client."
        ),
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    handoff_quiet_release_s: int = Field(
        default=1800,
        ge=60,
        description=(
            "A conversation taken over by staff goes back to the bot after this many seconds without a "
            "message from either side; the resident is told."
        ),
    )
    handoff_check_interval_s: float = Field(
        default=30.0, gt=0, description="How often the auto-release job looks for quiet conversations."
    )
    handoff_not_understood_limit: int = Field(
        default=2,
        ge=1,
        description="Failed understandings in a row after which the conversation is queued for staff.",
    )
    invite_ttl_hours: int = Field(
        default=72, ge=1, description="An invite code (staff, building leader) expires after this many hours."
    )

    # --- privacy -----------------------------------------------------------------------------------
    retention_days: int = Field(
        default=180,
        gt=0,
        description=(
            "Days personal data is kept after it is no longer needed: a finished appeal's phone, room, "
            "exact location and photos; the transcript and staff notes of a conversation quiet this long "
            "(without an open appeal); the saved phone of a resident with no open appeal and no message "
            "in this time. Statistics (category, building, status, times, ratings) stay."
        ),
    )

    # --- logging -----------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")
    log_json: bool = Field(default=False, description="Log as JSON lines instead of console text.")

    # --- metrics -----------------------------------------------------------------------------------
    metrics: bool = Field(
        default=True,
        description=(
            "Serve GET /metrics (Prometheus text format: counts, latencies, queue depths; no personal "
            "data). false: it answers 404."
        ),
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics requires the header 'Authorization: Bearer <this token>' (401 otherwise).",
    )

    def link(self, path: str) -> str:
        """An absolute link to ``path`` on this server, as residents and backends reach it."""
        base = self.public_url or f"http://{self.host}:{self.port}"
        return f"{base.rstrip('/')}/{path.lstrip('/')}"

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

    def backend_kind(self, community_code: str | None = None) -> str:
        """The kind of case backend a community's appeals may go to: open311, webhook or none.

        A community listed in ``HUIYIN_BACKEND_COMMUNITIES`` has its own; every other one has the global
        ``HUIYIN_BACKEND`` (``auto``: whichever of the Open311 and webhook URLs is set)."""
        entry = self.backend_communities.get(community_code or "")
        if entry is not None:
            return entry.kind
        if self.backend != "auto":
            return self.backend
        if self.open311_url:
            return "open311"
        if self.backend_webhook_url:
            return "webhook"
        return "none"


def settings_help() -> str:
    """A plain-text table of every setting: variable, default, description. Used by ``--help``."""
    lines = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"HUIYIN_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        lines.append(f"{var} (default: {default!s})\n    {field.description}")
    return "\n".join(lines)
