"""The engine's job for one run: the question in its conversation, with the right container."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.conversation import replay
from bot.engine import InputFile, Job
from bot.intake import as_input
from bot.requests import AnalysisRequest
from bot.store import Conversation, ThreadFile, thread_key

if TYPE_CHECKING:
    from bot.run import Parts

log = logging.getLogger(__name__)


@dataclass
class JobPlan:
    job: Job
    # Thread files that couldn't be brought back when a fresh container needed them (filled
    # in while the engine runs, should it re-attach them): the thread is told after the run.
    left_out: list[str] = field(default_factory=list)


async def plan_job(
    parts: Parts,
    request: AnalysisRequest,
    conversation: Conversation | None,
    new_files: list[ThreadFile],
    question: str,
    truncated: bool,
    run_id: int,
) -> JobPlan:
    """The job for ``question``, with the thread's earlier files and history."""
    earlier = conversation.files if conversation else ()
    # The stored container is always tried: the expires_at a response reports is a short
    # rolling value, while a checkpointed container stays restorable for 30 days. When the
    # API refuses it, the engine starts a fresh one (and calls ``reattach`` for the files).
    container_id = conversation.container_id if conversation else None
    key = thread_key(request.channel_id, request.thread_ts)
    owner = (conversation.user_id if conversation else None) or request.user_id
    left_out: list[str] = []

    async def available(files: tuple[ThreadFile, ...]) -> tuple[ThreadFile, ...]:
        """``files``, each uploaded again from its source if the Files API lost it."""
        kept = await parts.intake.still_available(
            files,
            team_id=request.team_id,
            user_id=request.user_id,
            run_id=run_id,
            conversation_id=request.channel_id,
            owner=owner,
        )
        for file in kept:
            await parts.conversations.add_file(key, file)
        still_here = {file.sha256 for file in kept}
        left_out.extend(file.filename for file in files if file.sha256 not in still_here)
        return tuple(kept)

    async def reattach() -> list[InputFile]:
        unique = {f.sha256: f for f in (*earlier, *new_files)}
        return [as_input(f) for f in await available(tuple(unique.values()))]

    if container_id is None and earlier:
        earlier = await available(earlier)
    known = {f.sha256 for f in earlier}
    fresh = [f for f in new_files if f.sha256 not in known]
    settings = parts.settings
    history = replay(
        conversation.turns if conversation else (),
        model=settings.model,
        max_messages=settings.history_max_messages,
        max_tokens=settings.history_max_tokens,
    )
    if history.dropped_turns or history.shortened_turns:
        log.info(
            "history of %s: %d exchanges dropped, %d answers shortened",
            request.thread_ts,
            history.dropped_turns,
            history.shortened_turns,
        )
    job = Job(
        question=question,
        files=[as_input(f) for f in fresh],
        thread_files=[as_input(f) for f in (*earlier, *fresh)],
        history=history.messages,
        container_id=container_id,
        container_reset=bool(history.messages) and container_id is None,
        question_truncated=truncated,
        asked_by=await parts.surface.people.name(request.user_id) or request.user_id,
        other_participant=request.user_id != owner,
        reattach=reattach,
    )
    return JobPlan(job, left_out)
