"""The one service every channel uses: runs the engine on a session and commits the result
before anything is shown, so a crash at any point resumes at the right question.

A channel applies one inbound event in one transaction: it runs the service `using` the
Store bound to that transaction (Store.transaction), and the step commits with the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import metrics
from bot.clock import Clock, utc_now
from bot.engine import inputs
from bot.engine.prompts import Prompt
from bot.engine.state import SessionState
from bot.engine.step import new_state, step
from bot.flow.loader import LoadedFlow, load_flow_text
from bot.flow.model import Flow
from storage.models import Contact, SurveySession
from storage.repo import Store


@dataclass(frozen=True)
class Step:
    """One committed change of a session, as hooks see it (inside its transaction)."""

    session_id: int
    contact_id: int
    flow: Flow
    before: SessionState
    after: SessionState
    now: datetime


# Work that must commit together with a step (open a case, close an invitation): it runs
# inside the same transaction, so a crash never leaves one without the other.
StepHook = Callable[[AsyncSession, Step], Awaitable[None]]


def contact_fields(contact: Contact) -> dict[str, Any]:
    """What a flow may read of a contact, in its placeholders and conditions."""
    first = contact.first_name or (contact.name.split()[0] if contact.name else None)
    fields = {"first_name": first, "name": contact.name, "company": contact.company,
              "role": contact.role, "segment": contact.segment}
    return {k: v for k, v in fields.items() if v}


@dataclass
class Conversation:
    """One person's session of one flow version."""

    session_id: int
    contact_id: int
    flow: Flow
    state: SessionState
    resumed: bool
    # what the channel last delivered (see SurveySession.shown), read with the session
    shown: str | None = None
    prompt_message_id: int | None = None


class SurveyService:
    def __init__(
        self, store: Store, clock: Clock = utc_now, hooks: Sequence[StepHook] = ()
    ) -> None:
        self.store = store
        self.clock = clock
        self.hooks = list(hooks)
        self._flows: dict[int, Flow] = {}

    def using(self, store: Store) -> SurveyService:
        """This service over `store` (one event's transaction), with the same clock, hooks
        and flow cache."""
        other = SurveyService(store, self.clock, self.hooks)
        other._flows = self._flows
        return other

    async def flow_of(self, version_id: int) -> Flow:
        # Sessions run on the version they started with, even after the file is edited.
        if version_id not in self._flows:
            version = await self.store.get_flow_version(version_id)
            self._flows[version_id] = load_flow_text(version.content, f"<{version.flow_id}>").flow
        return self._flows[version_id]

    async def open(
        self,
        contact: Contact,
        loaded: LoadedFlow,
        *,
        language: str | None = None,
        context: dict[str, Any] | None = None,
        resume: bool = True,
    ) -> Conversation:
        """The contact's open session of this flow, or a new one."""
        assert contact.id is not None
        if resume:
            session = await self.store.resumable_session(contact.id, loaded.flow.id)
            if session is not None:
                return await self.resume(session)
        version = await self.store.flow_version(
            loaded.flow.id, loaded.source, title=loaded.flow.title.get(loaded.flow.default_language)
        )
        assert version.id is not None
        self._flows.setdefault(version.id, loaded.flow)
        state = new_state(
            loaded.flow,
            language=language or contact.language,
            context=context,
            contact=contact_fields(contact),
        )
        session = await self.store.open_session(
            contact_id=contact.id,
            flow_version_id=version.id,
            flow_id=loaded.flow.id,
            language=state.language,
            context=state.context,
            state=state.to_json(),
            status=state.status,
            position=state.current,
            now=self.clock(),
        )
        return await self._conversation(session, resumed=False)

    async def resume(self, session: SurveySession) -> Conversation:
        return await self._conversation(session, resumed=True)

    async def _conversation(self, session: SurveySession, *, resumed: bool) -> Conversation:
        assert session.id is not None
        flow = await self.flow_of(session.flow_version_id)
        return Conversation(
            session_id=session.id,
            contact_id=session.contact_id,
            flow=flow,
            state=SessionState.from_json(session.state),
            resumed=resumed,
            shown=session.shown,
            prompt_message_id=session.prompt_message_id,
        )

    async def handle(
        self,
        conversation: Conversation,
        event: inputs.Input,
    ) -> list[Prompt]:
        """Run one input; the new state and answers are saved (with the step hooks, in one
        transaction: the service's Store's) before prompts return."""
        state, prompts = step(conversation.flow, conversation.state, event)
        if state != conversation.state:
            stopping = state.status == "stopped" and conversation.state.status != "stopped"
            consented = conversation.state.status == "consent" and state.status == "active"
            consent_text = conversation.flow.consent or {}
            now = self.clock()
            change = Step(conversation.session_id, conversation.contact_id, conversation.flow,
                          conversation.state, state, now)

            async def run_hooks(s: AsyncSession) -> None:
                for hook in self.hooks:
                    await hook(s, change)

            await self.store.save_state(
                conversation.session_id,
                state=state.to_json(),
                status=state.status,
                position=state.current,
                language=state.language,
                answers={q: (a.raw, a.value, a.skipped) for q, a in state.answers.items()},
                now=now,
                contact={"opted_out": True} if stopping else None,
                consent=(state.language, consent_text.get(state.language, ""))  # type: ignore[call-overload]
                if consented else None,
                within=run_hooks if self.hooks else None,
                # what the loaded state holds is what its rows hold: they are saved together
                stored={q: (a.raw, a.value, a.skipped)
                        for q, a in conversation.state.answers.items()},
            )
            metrics.ANSWERS.labels(conversation.flow.id).inc(sum(
                1 for q, a in state.answers.items()
                if not a.skipped and conversation.state.answers.get(q) != a))
            conversation.state = state
        return prompts
