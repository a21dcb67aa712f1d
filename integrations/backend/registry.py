"""Which case backend each community uses, built from the settings.

A community listed in ``HUIYIN_BACKEND_COMMUNITIES`` gets its own backend (fields it leaves unset come
from the global settings); every other community gets the global one (``HUIYIN_BACKEND``, by default
chosen from whichever of ``HUIYIN_OPEN311_URL`` / ``HUIYIN_BACKEND_WEBHOOK_URL`` is set). A community
whose backend is ``none`` has no backend: its appeals stay with the community's staff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.settings import CommunityBackend, Settings
from integrations.backend.base import CaseBackend

DEFAULT = "default"


class BackendConfigError(ValueError):
    """The backend settings are incomplete (e.g. a webhook backend without a secret)."""


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One resolved backend configuration. ``name`` is what appeals record in ``appeal.backend``."""

    name: str
    kind: str  # open311 | webhook
    url: str
    api_key: str | None = None
    jurisdiction: str | None = None
    service_codes: dict[str, str] = field(default_factory=dict)
    default_service_code: str | None = None
    secret: bytes | None = None


def _global_kind(settings: Settings) -> str:
    return settings.backend_kind()


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else None


def _spec(name: str, kind: str, settings: Settings, entry: CommunityBackend | None) -> BackendSpec | None:
    if kind == "none":
        return None
    if kind == "open311":
        url = (entry.url if entry else None) or settings.open311_url
        if not url:
            raise BackendConfigError(f"backend {name!r}: Open311 needs a URL (HUIYIN_OPEN311_URL)")
        return BackendSpec(
            name=name,
            kind=kind,
            url=url,
            api_key=_secret(entry.api_key if entry and entry.api_key else settings.open311_api_key),
            jurisdiction=(entry.jurisdiction if entry else None) or settings.open311_jurisdiction,
            service_codes=(
                entry.service_codes if entry and entry.service_codes else settings.open311_service_codes
            ),
            default_service_code=(entry.default_service_code if entry else None)
            or settings.open311_default_service_code,
        )
    url = (entry.url if entry else None) or settings.backend_webhook_url
    secret = _secret(entry.secret if entry and entry.secret else settings.backend_webhook_secret)
    if not url:
        raise BackendConfigError(f"backend {name!r}: the webhook needs a URL (HUIYIN_BACKEND_WEBHOOK_URL)")
    if not secret:
        raise BackendConfigError(
            f"backend {name!r}: the webhook needs a shared secret (HUIYIN_BACKEND_WEBHOOK_SECRET) to sign with"
        )
    return BackendSpec(name=name, kind=kind, url=url, secret=secret.encode())


class Backends:
    """The configured backends, created on first use and shared by every appeal that uses them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._default = _spec(DEFAULT, _global_kind(settings), settings, None)
        self._by_community: dict[str, BackendSpec | None] = {}
        for code, entry in settings.backend_communities.items():
            name = f"{entry.kind}:{code}"[:32]
            self._by_community[code] = _spec(name, entry.kind, settings, entry)
        self._instances: dict[str, CaseBackend] = {}

    @property
    def any(self) -> bool:
        """Whether any community has a backend (else the forwarder leaves backend rows alone)."""
        return self._default is not None or any(s is not None for s in self._by_community.values())

    def spec_for(self, community_code: str) -> BackendSpec | None:
        if community_code in self._by_community:
            return self._by_community[community_code]
        return self._default

    def specs(self) -> list[BackendSpec]:
        found = [self._default, *self._by_community.values()]
        return [s for s in found if s is not None]

    def for_community(self, community_code: str) -> CaseBackend | None:
        spec = self.spec_for(community_code)
        return self._instance(spec) if spec else None

    def by_name(self, name: str) -> CaseBackend | None:
        spec = next((s for s in self.specs() if s.name == name), None)
        return self._instance(spec) if spec else None

    def _instance(self, spec: BackendSpec) -> CaseBackend:
        backend = self._instances.get(spec.name)
        if backend is not None:
            return backend
        s = self.settings
        if spec.kind == "open311":
            from integrations.backend.open311 import Open311Backend

            backend = Open311Backend(
                name=spec.name,
                url=spec.url,
                api_key=spec.api_key,
                jurisdiction=spec.jurisdiction,
                service_codes=spec.service_codes,
                default_service_code=spec.default_service_code,
                updates=s.open311_updates,
                timeout_s=s.backend_timeout_s,
                max_connections=s.forwarder_concurrency,
            )
        else:
            from integrations.backend.webhook import WebhookBackend

            assert spec.secret is not None
            backend = WebhookBackend(
                name=spec.name,
                url=spec.url,
                secret=spec.secret,
                timeout_s=s.backend_timeout_s,
                max_connections=s.forwarder_concurrency,
            )
        self._instances[spec.name] = backend
        return backend

    async def close(self) -> None:
        for backend in self._instances.values():
            await backend.close()
        self._instances.clear()
