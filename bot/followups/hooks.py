"""What a survey step sets off, committed in the step's own transaction (see SurveyService):
detractor cases and their staff alerts, and the invitation the session answers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.followups.alerts import comment_of, crossings, note_comments, open_cases
from bot.followups.webhooks import webhook_hook
from bot.survey import Step, StepHook
from storage.invitations import on_session_status


def alert_hook(staff: Sequence[tuple[str, str]]) -> StepHook:
    """Cases and their alerts to `staff`, (channel, address) pairs."""
    async def on_step(s: AsyncSession, step: Step) -> None:
        path_before = {k: v for k, v in step.before.values().items() if k in step.before.history}
        path_after = {k: v for k, v in step.after.values().items() if k in step.after.history}
        found = crossings(step.flow, path_before, path_after)
        if found:
            await open_cases(s, session_id=step.session_id, contact_id=step.contact_id,
                             flow=step.flow, crossings=found, now=step.now,
                             staff=staff)
        elif path_after != path_before and (comment_of(step.flow, step.before.answers)
                                            != comment_of(step.flow, step.after.answers)):
            # a comment typed after the score belongs to its case (the alert quotes it
            # anyway: it is written when sent). A case's comment is what comment_of said
            # when it last changed, so a step that changes no text answer leaves it as it
            # is, and the session's cases are not read (one query less on most steps).
            await note_comments(s, step.session_id, flow=step.flow)

    return on_step


async def invitation_hook(s: AsyncSession, step: Step) -> None:
    """Completed, stopped or declined: the invitation follows and its reminders stop."""
    if step.after.status != step.before.status:
        await on_session_status(s, session_id=step.session_id, contact_id=step.contact_id,
                                flow_id=step.flow.id, status=step.after.status, now=step.now)


def survey_hooks(staff: Sequence[tuple[str, str]]) -> list[StepHook]:
    """The step hooks; staff alerts go to `staff`, (channel, address) pairs. Webhook
    events (response.completed) are queued with the step too."""
    return [alert_hook(staff), invitation_hook, webhook_hook]
