"""A reference case backend on loopback: Open311 GeoReport v2 and the signed webhook, in one small server.

It is what the tests and the benchmark deliver to, and a way to try the whole loop on one machine
(``python -m integrations.backend.reference --port 8311``). It behaves as huiyin asks a real backend to
behave — it honours the ``Idempotency-Key`` header, so a repeated call returns the first answer instead
of a second case — and it records every call, so a test can tell "arrived once" from "sent once".

Open311 (under ``/open311/v2``): ``services.json``, ``requests.json`` (POST form-encoded with
``api_key``; GET with ``service_request_id=a,b``), ``requests/{id}.json``, ``tokens/{token}.json``
(in token mode the answer to a new request is a token that turns into an id after a few polls) and the
``servicerequestupdates.json`` extension — or, with ``updates=False``, no such endpoint, as on a plain
GeoReport v2 server (it answers ``updates_status``: 404, 405 or 501). Webhook: ``POST /webhook``,
signature checked when a secret is set. Test controls: :meth:`fail_next`, :meth:`hold_creates_after`,
:meth:`set_status`, ``delay_s``.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from integrations.backend.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify

SERVICES: list[dict[str, Any]] = [
    {
        "service_code": "001",
        "service_name": "房屋与公共设施维修",
        "group": "repairs",
        "keywords": "报修,维修,楼道灯,电梯,漏水",
        "type": "realtime",
        "metadata": False,
        "description": "楼道、电梯、屋面、管道等公共部位的维修",
    },
    {
        "service_code": "002",
        "service_name": "环境卫生与绿化",
        "group": "environment",
        "keywords": "垃圾,卫生,绿化",
        "type": "realtime",
        "metadata": False,
        "description": "垃圾清运、环境卫生、绿化养护",
    },
    {
        "service_code": "003",
        "service_name": "停车与车辆",
        "group": "parking",
        "keywords": "停车,车位,消防通道",
        "type": "realtime",
        "metadata": False,
        "description": "占用车位、乱停车",
    },
    {
        "service_code": "099",
        "service_name": "其他民生诉求",
        "group": "other",
        "keywords": "",
        "type": "realtime",
        "metadata": False,
        "description": "其他",
    },
]

_PUBLIC_ID = re.compile(r"回音编号\s*([^\s，）]+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Case:
    backend_id: str
    public_id: str
    channel: str  # open311 | webhook
    data: dict[str, Any]
    status: str = "open"
    notes: str = ""
    updated: str = field(default_factory=_now)
    token: str | None = None
    token_polls: int = 0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    key: str | None
    at: float


class ReferenceBackend:
    def __init__(
        self,
        *,
        port: int | None = None,
        api_key: str | None = None,
        secret: bytes | None = None,
        tokens: bool = False,
        token_polls: int = 1,
        delay_s: float = 0.0,
        tolerance_s: int = 300,
        updates: bool = True,
        updates_status: int = 404,
    ) -> None:
        self.port = port or free_port()
        self.api_key = api_key
        self.secret = secret
        self.tokens = tokens
        self.token_polls = token_polls
        self.delay_s = delay_s
        self.tolerance_s = tolerance_s
        self.takes_updates = updates
        self.updates_status = updates_status
        self.lock = threading.Lock()
        self.cases: dict[str, Case] = {}
        self.by_key: dict[str, tuple[int, bytes]] = {}  # idempotency key -> the first answer
        self.calls: list[Call] = []
        self.replays = 0
        self.updates: list[dict[str, Any]] = []
        self.refused_signatures = 0
        self._fail: list[int] = []
        self._hold_after: int | None = None
        self._held = threading.Event()  # set: a create is being held
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seq = 1000

    # --- life --------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open311_url(self) -> str:
        return f"{self.base_url}/open311/v2"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhook"

    def start(self) -> ReferenceBackend:
        handler = type("Handler", (_Handler,), {"backend": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="reference-backend", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ReferenceBackend:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- controls ----------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` calls with ``status`` (without recording a case)."""
        with self.lock:
            self._fail.extend([status] * count)

    def hold_creates_after(self, count: int) -> None:
        """After ``count`` new cases, store the next one but hold its answer until :meth:`release`:
        the caller cannot know whether it arrived (as when a process dies mid-call)."""
        self._hold_after = count
        self._held.clear()
        self._release.clear()

    def wait_held(self, timeout_s: float = 10.0) -> bool:
        return self._held.wait(timeout_s)

    def release(self) -> None:
        self._release.set()

    def set_status(self, public_id: str, status: str, notes: str = "") -> Case:
        with self.lock:
            case = self.case_of(public_id)
            case.status, case.notes, case.updated = status, notes, _now()
            return case

    # --- what arrived ------------------------------------------------------------------------------
    def case_of(self, public_id: str) -> Case:
        found = [c for c in self.cases.values() if c.public_id == public_id]
        if len(found) != 1:
            raise KeyError(f"{public_id}: {len(found)} cases")
        return found[0]

    def public_ids(self) -> list[str]:
        """The public id of every case, once per case (a duplicate case shows up twice)."""
        with self.lock:
            return [c.public_id for c in self.cases.values()]

    def creates_sent(self) -> int:
        with self.lock:
            return sum(
                1
                for c in self.calls
                if c.method == "POST"
                and (c.path.endswith("/requests.json") or c.path == "/webhook")
                and c.key is not None
                and c.key.endswith(":create")
            )

    # --- handling (called from the server's threads) --------------------------------------------------
    def _next_id(self) -> str:
        self._seq += 1
        return str(self._seq)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any]:
        key = headers.get("Idempotency-Key")
        with self.lock:
            self.calls.append(Call(method, path, key, time.time()))
            if self._fail:
                return self._fail.pop(0), [{"code": 503, "description": "维护中，请稍后再试"}]
            if key is not None and key in self.by_key:
                self.replays += 1
                status, raw = self.by_key[key]
                return status, json.loads(raw)
        if self.delay_s:
            time.sleep(self.delay_s)
        if path.startswith("/open311/v2/"):
            status, answer = self._open311(
                method, path.removeprefix("/open311/v2/"), query, headers, body, key
            )
        elif path == "/webhook" and method == "POST":
            status, answer = self._webhook(headers, body, key)
        else:
            status, answer = 404, {"detail": "not found"}
        if key is not None and 200 <= status < 300:
            with self.lock:
                self.by_key.setdefault(key, (status, json.dumps(answer).encode()))
        return status, answer

    def _maybe_hold(self) -> None:
        with self.lock:
            new_cases = len(self.cases)
            hold = self._hold_after is not None and new_cases == self._hold_after + 1
            if hold:
                self._hold_after = None
        if hold:
            self._held.set()
            self._release.wait(60)

    def _remember(self, key: str | None, answer: Any) -> None:
        """Record a new case's answer under its key at once (under the lock, with the case), so a
        repeat that arrives while the first call is still being answered finds it."""
        if key is not None:
            self.by_key[key] = (200, json.dumps(answer).encode())

    def _open311(
        self, method: str, route: str, query: dict[str, list[str]], headers: Any, body: bytes, key: str | None
    ) -> tuple[int, Any]:
        if method == "GET" and route == "services.json":
            return 200, SERVICES
        if method == "POST" and route == "requests.json":
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            if self.api_key is not None and form.get("api_key") != self.api_key:
                return 403, [{"code": 403, "description": "Invalid api_key"}]
            if form.get("service_code") not in {s["service_code"] for s in SERVICES}:
                return 400, [{"code": 400, "description": "service_code not found"}]
            if not form.get("description") or not (form.get("address_string") or form.get("lat")):
                return 400, [{"code": 400, "description": "description and a location are required"}]
            found = _PUBLIC_ID.search(form["description"])
            with self.lock:
                case = Case(self._next_id(), found.group(1) if found else "", "open311", form)
                if self.tokens:
                    case.token = f"T{case.backend_id}"
                self.cases[case.backend_id] = case
                answer: Any = (
                    [{"token": case.token}]
                    if case.token
                    else [{"service_request_id": case.backend_id, "service_notice": "已受理登记"}]
                )
                self._remember(key, answer)
            self._maybe_hold()
            return 200, answer
        if method == "GET" and route.startswith("tokens/") and route.endswith(".json"):
            token = route.removeprefix("tokens/").removesuffix(".json")
            with self.lock:
                pending = next((c for c in self.cases.values() if c.token == token), None)
                if pending is None:
                    return 404, [{"code": 404, "description": "token not found"}]
                pending.token_polls += 1
                if pending.token_polls < self.token_polls:
                    return 200, [{"token": token}]
                return 200, [{"token": token, "service_request_id": pending.backend_id}]
        if method == "GET" and (route == "requests.json" or re.fullmatch(r"requests/[^/]+\.json", route)):
            if route == "requests.json":
                ids = [i for v in query.get("service_request_id", []) for i in v.split(",") if i]
            else:
                ids = [route.removeprefix("requests/").removesuffix(".json")]
            with self.lock:
                found_cases = [self.cases[i] for i in ids if i in self.cases]
                return 200, [_request_json(c) for c in found_cases]
        if method == "POST" and route == "servicerequestupdates.json" and not self.takes_updates:
            answers = {404: "not found", 405: "method not allowed", 501: "not implemented"}
            words = answers.get(self.updates_status, "no update endpoint")
            return self.updates_status, [{"code": self.updates_status, "description": words}]
        if method == "POST" and route == "servicerequestupdates.json":
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            if self.api_key is not None and form.get("api_key") != self.api_key:
                return 403, [{"code": 403, "description": "Invalid api_key"}]
            with self.lock:
                if form.get("service_request_id") not in self.cases:
                    # 400, not 404: a 404 here would say "no such endpoint" (see ``updates``).
                    return 400, [{"code": 400, "description": "service_request_id not found"}]
                self.updates.append({"channel": "open311", **form})
                if form.get("status") == "OPEN":
                    case = self.cases[form["service_request_id"]]
                    case.status, case.updated = "open", _now()
            return 200, [{"update_id": form.get("update_id")}]
        return 404, [{"code": 404, "description": "not found"}]

    def _webhook(self, headers: Any, body: bytes, key: str | None) -> tuple[int, Any]:
        if self.secret is not None:
            timestamp = headers.get(TIMESTAMP_HEADER) or ""
            given = headers.get(SIGNATURE_HEADER) or ""
            if not verify(self.secret, timestamp, given, body) or not timestamp.isdigit():
                with self.lock:
                    self.refused_signatures += 1
                return 401, {"detail": "bad signature"}
            if abs(time.time() - int(timestamp)) > self.tolerance_s:
                return 403, {"detail": "stale"}
        event = json.loads(body)
        kind = event.get("event")
        if kind == "appeal.created":
            with self.lock:
                case = Case(f"C{self._next_id()}", event["appeal"]["public_id"], "webhook", event["appeal"])
                self.cases[case.backend_id] = case
                self._remember(key, {"case_id": case.backend_id})
            self._maybe_hold()
            return 200, {"case_id": case.backend_id}
        with self.lock:
            self.updates.append({"channel": "webhook", **event})
        return 200, {"ok": True}

    # --- the backend calling huiyin -----------------------------------------------------------------
    def signed_event(
        self,
        public_id: str,
        status: str,
        note: str = "",
        *,
        event_id: str | None = None,
        now: float | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A status event for huiyin's ``POST /backend/events``, signed with this backend's secret."""
        assert self.secret is not None, "a webhook backend needs a secret"
        body = json.dumps(
            {
                "event_id": event_id or f"evt-{public_id}-{status}-{time.time_ns()}",
                "public_id": public_id,
                "status": status,
                "note": note,
                "occurred_at": _now(),
            },
            ensure_ascii=False,
        ).encode()
        return body, signed_headers(self.secret, body, now)


def _request_json(case: Case) -> dict[str, Any]:
    return {
        "service_request_id": case.backend_id,
        "status": case.status,
        "status_notes": case.notes,
        "service_code": case.data.get("service_code"),
        "description": case.data.get("description"),
        "address": case.data.get("address_string"),
        "requested_datetime": case.updated,
        "updated_datetime": case.updated,
        "agency_responsible": "示例街道城市管理办公室",
    }


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a forwarder opens 16 at once.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    backend: ReferenceBackend
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records instead
        return

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, answer = self.backend.handle(
                method, parts.path, parse_qs(parts.query), self.headers, body
            )
        except Exception as exc:  # a bug here must show up as a 500, not a hang
            status, answer = 500, {"detail": repr(exc)}
        raw = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


def main() -> None:
    ap = argparse.ArgumentParser(
        description="A reference Open311 + signed-webhook case backend on 127.0.0.1."
    )
    ap.add_argument("--port", type=int, default=8311)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--secret", default=None, help="webhook shared secret")
    ap.add_argument("--tokens", action="store_true", help="answer new Open311 requests with a token")
    ap.add_argument(
        "--no-updates",
        action="store_true",
        help="no servicerequestupdates.json, as on a plain GeoReport v2 server (answers --updates-status)",
    )
    ap.add_argument("--updates-status", type=int, choices=(404, 405, 501), default=404)
    args = ap.parse_args()
    backend = ReferenceBackend(
        port=args.port,
        api_key=args.api_key,
        secret=args.secret.encode() if args.secret else None,
        tokens=args.tokens,
        updates=not args.no_updates,
        updates_status=args.updates_status,
    ).start()
    print(f"Open311: {backend.open311_url}   webhook: {backend.webhook_url}   (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        backend.stop()


if __name__ == "__main__":
    main()
