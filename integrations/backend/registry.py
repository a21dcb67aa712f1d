"""Which case backend each community uses, built from the settings.

A community listed in ``HUIYIN_BACKEND_COMMUNITIES`` gets its own backend (fields it leaves unset come
from the global settings); every other community gets the global one (``HUIYIN_BACKEND``, by default
chosen from whichever of ``HUIYIN_OPEN311_URL`` / ``HUIYIN_BACKEND_WEBHOOK_URL`` is set). A community
whose backend is ``none`` has no backend: its appeals stay with the community's staff.

Open311 service codes are merged per community from, weakest first: the global
``HUIYIN_OPEN311_SERVICE_CODES`` / ``HUIYIN_OPEN311_DEFAULT_SERVICE_CODE``, the community profile's
``open311.services`` (``kb/communities/<code>.yml``), and the community's entry in
``HUIYIN_BACKEND_COMMUNITIES`` (``service_codes`` / ``default_service_code``, then ``services``): a key
set by a stronger source replaces the same key of a weaker one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from bot.settings import CommunityBackend, Settings
from integrations.backend.base import BackendError, CaseBackend
from kb.model import Category, Open311Services

log = structlog.get_logger(__name__)

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
    services: Open311Services = field(default_factory=Open311Services)  # communities without their own
    community_services: dict[str, Open311Services] = field(default_factory=dict)
    updates: bool = True
    secret: bytes | None = None


def _global_kind(settings: Settings) -> str:
    return settings.backend_kind()


def _secret(value: object) -> str | None:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else None


def _flat(codes: Mapping[str, str], default: str | None) -> Open311Services:
    """The older one-level form (category or matter id → code) as a mapping."""
    categories = {str(c) for c in Category}
    return Open311Services(
        by_matter={k: v for k, v in codes.items() if k not in categories},
        by_category={Category(k): v for k, v in codes.items() if k in categories},
        default=default,
    )


def merge_services(*layers: Open311Services | None) -> Open311Services:
    """One mapping from ``layers``, weakest first: each key (and the default) comes from the strongest
    layer that sets it."""
    by_matter: dict[str, str] = {}
    by_category: dict[Category, str] = {}
    default: str | None = None
    for layer in layers:
        if layer is None:
            continue
        by_matter.update(layer.by_matter)
        by_category.update(layer.by_category)
        default = layer.default or default
    return Open311Services(by_matter=by_matter, by_category=by_category, default=default)


def profile_services(root: Path | None = None) -> dict[str, Open311Services]:
    """The ``open311.services`` of each community profile of the knowledge base (default: the shipped
    one), by community code. A profile that does not load is logged and left out (``huiyin kb check``
    says why)."""
    from kb.loader import KB_ROOT, LoadResult, load_profiles

    result = LoadResult()
    load_profiles((root or KB_ROOT) / "communities", result)
    for error in result.errors:
        log.warning("community profile not loaded for the Open311 service mapping", error=error)
    return {p.value.code: p.value.open311.services for p in result.profiles if p.value.open311 is not None}


def _spec(
    name: str,
    kind: str,
    settings: Settings,
    entry: CommunityBackend | None,
    profiles: Mapping[str, Open311Services],
    code: str | None = None,
) -> BackendSpec | None:
    if kind == "none":
        return None
    if kind == "open311":
        url = (entry.url if entry else None) or settings.open311_url
        if not url:
            raise BackendConfigError(f"backend {name!r}: Open311 needs a URL (HUIYIN_OPEN311_URL)")
        base = _flat(settings.open311_service_codes, settings.open311_default_service_code)
        if entry is None or code is None:
            # The global backend: each community without an entry of its own, by its profile.
            community = {c: merge_services(base, m) for c, m in profiles.items()}
        else:
            own = _flat(entry.service_codes, entry.default_service_code)
            merged = merge_services(base, profiles.get(code), own, entry.services)
            base, community = merged, {code: merged}
        return BackendSpec(
            name=name,
            kind=kind,
            url=url,
            api_key=_secret(entry.api_key if entry and entry.api_key else settings.open311_api_key),
            jurisdiction=(entry.jurisdiction if entry else None) or settings.open311_jurisdiction,
            services=base,
            community_services=community,
            updates=settings.open311_updates if entry is None or entry.updates is None else entry.updates,
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


def _uses_open311(settings: Settings) -> bool:
    return _global_kind(settings) == "open311" or any(
        e.kind == "open311" for e in settings.backend_communities.values()
    )


class Backends:
    """The configured backends, created on first use and shared by every appeal that uses them."""

    def __init__(self, settings: Settings, profiles: Mapping[str, Open311Services] | None = None) -> None:
        """``profiles``: the communities' ``open311.services`` (default: read from the shipped KB)."""
        self.settings = settings
        if profiles is None:
            profiles = profile_services() if _uses_open311(settings) else {}
        self._default = _spec(DEFAULT, _global_kind(settings), settings, None, profiles)
        self._by_community: dict[str, BackendSpec | None] = {}
        for code, entry in settings.backend_communities.items():
            name = f"{entry.kind}:{code}"[:32]
            self._by_community[code] = _spec(name, entry.kind, settings, entry, profiles, code)
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
                services=spec.services,
                community_services=spec.community_services,
                updates=spec.updates,
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

    async def check_services(self) -> list[str]:
        """Check each Open311 backend's service mappings against the services its server lists; every
        problem is logged (a warning each) and returned. A server that cannot be asked now is logged too."""
        from integrations.backend.open311 import Open311Backend

        problems: list[str] = []
        for spec in self.specs():
            if spec.kind != "open311":
                continue
            backend = self._instance(spec)
            assert isinstance(backend, Open311Backend)
            try:
                found = await backend.check_services()
            except BackendError as exc:
                log.warning("open311 service mappings not checked", backend=spec.name, error=str(exc))
                continue
            for problem in found:
                log.warning(
                    "open311 service mapping names a service code the server does not offer",
                    backend=spec.name,
                    problem=problem,
                )
            problems.extend(found)
        return problems

    async def close(self) -> None:
        for backend in self._instances.values():
            await backend.close()
        self._instances.clear()
