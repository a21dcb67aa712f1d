"""The retention period: personal data huiyin no longer needs is removed after ``HUIYIN_RETENTION_DAYS``.

What goes, once the period has passed:

- of an appeal finished (resolved, rejected, closed, withdrawn) longer ago: the contact phone, the room
  and unit, the exact location, the photos (a photo downloaded under the data folder is deleted), phone
  and room numbers in what people wrote about it (description, place, staff's notes, the resident's
  comment: masked); the texts of its delivered notifications; the appeal is marked
  ``personal_data_removed_at``;
- of a conversation quiet longer, without an open appeal or handoff: its transcript, staff's notes on it,
  the summaries of its closed handoffs, a half-finished dialog's durable copy;
- of a person with no open appeal and no message in that time: the saved phone number and the consent
  given for it.

What stays is what statistics need: category, matter, responsible party, building, status, the times,
ratings, the status history.

The worker runs :meth:`Retention.run` every few minutes (:mod:`integrations.backend.forwarder`). Each
pass removes at most ``batch`` rows of each kind in one transaction and passes repeat until nothing is
left (or ``max_passes``): a first run on a large database does not hold one huge transaction. Running it
again changes nothing; several workers may run it at once (see :mod:`bot.db.repository.retention`).
``now`` is the clock it acts on, so tests move time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import structlog

from bot.db.models import HandoffNote, TranscriptMessage, utcnow
from bot.db.repository.retention import RetentionRecords
from bot.db.session import Database
from bot.dialog.slots import mask_personal

log = structlog.get_logger(__name__)

BATCH = 200
"""Rows of each kind one pass removes."""

MAX_PASSES = 50
"""Passes one run makes at most; the rest waits for the next run."""


@dataclass
class RetentionReport:
    """How many of each kind one run removed."""

    appeals: int = 0
    photos_deleted: int = 0
    notifications: int = 0
    transcript_messages: int = 0
    notes: int = 0
    summaries: int = 0
    dialog_states: int = 0
    phones: int = 0

    def add(self, other: RetentionReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "photos_deleted")

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Retention:
    def __init__(
        self,
        db: Database,
        *,
        retention_days: int,
        data_dir: Path,
        batch: int = BATCH,
        max_passes: int = MAX_PASSES,
    ) -> None:
        if retention_days <= 0:
            raise ValueError("the retention period must be at least one day")
        self.db = db
        self.period = timedelta(days=retention_days)
        self.data_dir = data_dir.resolve()
        self.batch = batch
        self.max_passes = max_passes

    async def run(self, now: datetime | None = None) -> RetentionReport:
        """Remove everything kept past the period at ``now`` (default: the clock); see the module."""
        now = now or utcnow()
        report = RetentionReport()
        for _ in range(self.max_passes):
            done = await self.run_pass(now)
            report.add(done)
            if done.total < self.batch:
                # No kind filled its batch (a kind that did would have made total reach it): all done.
                break
        return report

    async def run_pass(self, now: datetime) -> RetentionReport:
        """One pass: at most ``batch`` rows of each kind, in one transaction; photo files go after the
        commit (a rolled-back pass keeps its appeals' photos)."""
        cutoff = now - self.period
        report = RetentionReport()
        async with self.db.unit_of_work() as uow:
            records = RetentionRecords(uow.session, skip_locked=not self.db.is_sqlite)
            candidates = await records.finished_appeals(cutoff, self.batch)
            photos = {appeal_id: p for appeal_id, p in candidates}
            purged = await records.remove_appeal_data(list(photos), now)
            for column, row_id, text in await records.written_texts(purged):
                if (masked := mask_personal(text)) != text:
                    await records.rewrite(column, row_id, masked)
            report.appeals = len(purged)
            report.notifications = await records.clear_sent_payloads(purged)
            report.transcript_messages = await records.delete_rows(
                TranscriptMessage, await records.old_transcript(cutoff, self.batch)
            )
            report.notes = await records.delete_rows(HandoffNote, await records.old_notes(cutoff, self.batch))
            report.summaries = await records.clear_old_summaries(cutoff, self.batch)
            report.dialog_states = await records.clear_old_dialog_states(cutoff, self.batch)
            report.phones = await records.remove_idle_phones(cutoff, self.batch)
            await uow.commit()
        for appeal_id in purged:
            report.photos_deleted += self.delete_photo_files(photos.get(appeal_id, []))
        return report

    def delete_photo_files(self, photos: list[Any]) -> int:
        """Delete the files of ``photos`` that lie under the data folder (downloaded copies); a photo
        elsewhere (a platform's file id, a URL) has no file of ours. Returns how many were deleted."""
        deleted = 0
        for photo in photos:
            path = self._local_file(photo)
            if path is None:
                continue
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass  # another worker, or someone, was first
            except OSError as exc:
                log.warning("photo file not deleted", error=exc.__class__.__name__)
        return deleted

    def _local_file(self, photo: Any) -> Path | None:
        url = photo.get("url") if isinstance(photo, dict) else None
        if not isinstance(url, str):
            return None
        parsed = urlparse(url)
        if parsed.scheme == "file":
            raw = unquote(parsed.path)
        elif parsed.scheme == "" and url.startswith("/"):
            raw = url
        else:
            return None
        path = Path(raw).resolve()
        return path if path.is_relative_to(self.data_dir) and path.is_file() else None
