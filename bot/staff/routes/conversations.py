"""Console routes: the queue of conversations waiting for staff, one conversation, taking over, replying,
notes, releasing and filing an appeal from the conversation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.db.models import CannedReply, Community, Conversation, HandoffStatus
from bot.db.repository.console import ConsoleRepository
from bot.handoff.desk import HandoffDesk, HandoffError
from bot.roles import staff_name
from bot.staff import queries
from bot.staff.context import Console, Ctx

TRANSCRIPT_LIMIT = 300


# --- the queue -------------------------------------------------------------------------------------------
def add_queue_routes(app: FastAPI, console: Console) -> None:
    """``/`` (to the queue), ``/queue`` and its ``/live`` fragment."""

    @app.get("/")
    async def home(request: Request) -> Response:
        async with console.ctx(request, staff_only=False) as c:
            start = "/queue" if c.user.is_staff else "/appeals"
        return RedirectResponse(f"{request.scope.get('root_path', '')}{start}", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    async def queue_page(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "queue.html", **await _queue_values(c))

    @app.get("/queue/live", response_class=HTMLResponse)
    async def queue_live(request: Request) -> Response:
        async with console.ctx(request) as c:
            return console.render(c, request, "_queue.html", **await _queue_values(c))


async def _queue_values(c: Ctx) -> dict[str, Any]:
    desk = c.rt.dispatcher.handoff
    items = await desk.queue(c.session, c.user.community_ids)
    return {
        "waiting": [i for i in items if i.handoff.status == HandoffStatus.WAITING.value],
        "active": [i for i in items if i.handoff.status == HandoffStatus.ACTIVE.value],
        "recent": await queries.recent_conversations(c.session, c.user.community_ids),
        "reasons": _reasons(desk),
    }


def _reasons(desk: HandoffDesk) -> dict[str, str]:
    """The wording of each reason a conversation was handed to staff, by reason key."""
    return {
        r: desk.words.get(f"staff.reasons.{r}") for r in ("asked", "not_understood", "emergency", "staff")
    }


# --- one conversation ------------------------------------------------------------------------------------
async def _conversation(c: Ctx, conversation_id: int) -> Conversation:
    conv = await c.session.get(Conversation, conversation_id)
    if conv is None or not c.user.serves(conv.community_id):
        raise HTTPException(404, "no such conversation")
    return conv


def add_conversation_routes(app: FastAPI, console: Console) -> None:
    """``/conversations/{id}``, its ``/live`` fragment, and the take, reply, note, release and file
    (登记为诉求) actions."""

    @app.get("/conversations/{conversation_id}", response_class=HTMLResponse)
    async def conversation_page(request: Request, conversation_id: int) -> Response:
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            values = await _conversation_values(c, conv)
            desk = c.rt.dispatcher.handoff
            values["canned"] = await desk.canned(c.session, conv.community_id)
            await c.record_view("conversation", conv.id, conv.community_id)
            return console.render(c, request, "conversation.html", **values)

    @app.get("/conversations/{conversation_id}/live", response_class=HTMLResponse)
    async def conversation_live(request: Request, conversation_id: int) -> Response:
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            return console.render(
                c, request, "_conversation_live.html", **await _conversation_values(c, conv)
            )

    async def act(request: Request, conversation_id: int, action: str) -> Response:
        base = request.scope.get("root_path", "")
        back = f"{base}/conversations/{conversation_id}"
        rt = console.get_runtime()
        desk = rt.dispatcher.handoff
        async with console.ctx(request) as c:
            conv = await _conversation(c, conversation_id)
            form = await console.form(c)
            try:
                if action == "take":
                    outcome = await desk.take(c.session, conv.id, c.user.person_id, via="console")
                elif action == "release":
                    outcome = await desk.release(c.session, conv.id, c.user.person_id, via="console")
                elif action == "note":
                    outcome = await desk.note(
                        c.session, conv.id, c.user.person_id, str(form.get("text") or "")
                    )
                elif action == "file":
                    outcome = await desk.file_appeal(
                        c.session, conv.id, c.user.person_id, str(form.get("text") or ""), via="console"
                    )
                else:
                    text, canned_id = str(form.get("text") or ""), None
                    if (chosen := str(form.get("canned") or "")).isdigit() and not text.strip():
                        canned = await c.session.get(CannedReply, int(chosen))
                        if canned is None or canned.community_id != conv.community_id:
                            raise HTTPException(404, "no such canned reply")
                        text, canned_id = canned.text, canned.id
                    outcome = await desk.reply(
                        c.session, conv.id, c.user.person_id, text, canned_id=canned_id
                    )
            except HandoffError as exc:
                return RedirectResponse(f"{back}?{urlencode({'error': exc.key})}", status_code=303)
            await c.commit()
        failed = await desk.send(outcome.notices, rt.outbound)
        done = {"take": "taken", "release": "released", "note": "noted", "reply": "replied"}.get(action, "")
        if failed and action == "reply":
            done = "reply_failed"
        if action == "file":
            done = "filed" if outcome.created else "file_already"
            return RedirectResponse(
                f"{back}?{urlencode({'done': done, 'appeal': outcome.appeal or ''})}", status_code=303
            )
        return RedirectResponse(f"{back}?done={done}", status_code=303)

    for action in ("take", "reply", "note", "release", "file"):

        async def endpoint(request: Request, conversation_id: int, _action: str = action) -> Response:
            return await act(request, conversation_id, _action)

        app.add_api_route(f"/conversations/{{conversation_id}}/{action}", endpoint, methods=["POST"])


async def _conversation_values(c: Ctx, conv: Conversation) -> dict[str, Any]:
    desk = c.rt.dispatcher.handoff
    transcript = await ConsoleRepository(c.session).latest_transcript(conv.id, TRANSCRIPT_LIMIT)
    authors = {m.author_person_id for m in transcript if m.author == "staff" and m.author_person_id}
    staff_names = {pid: await staff_name(c.session, pid) for pid in authors}
    handoff = await desk.open_handoff(c.session, conv.id)
    holder = await staff_name(c.session, handoff.holder_id) if handoff and handoff.holder_id else None
    community = await c.session.get(Community, conv.community_id)
    return {
        "conv": conv,
        "address": await desk.address(c.session, conv.id),
        "summary": await desk.summary(c.session, conv.id),
        "transcript": transcript,
        "staff_names": staff_names,
        "notes": await desk.notes(c.session, conv.id),
        "handoff": handoff,
        "holder": holder,
        "mine": bool(handoff and handoff.holder_id == c.user.person_id),
        "community": community,
        "reasons": _reasons(desk),
    }
