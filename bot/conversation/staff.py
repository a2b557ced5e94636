"""Staff commands, whatever the channel: `/report [FLOW]` (with the trend chart) and
`/resolve CASE note`.

A channel recognises a staff member and hands over the command's name, its argument text
and who they are; it gets back the messages to send (text, a photo), nothing of its own
types in between. Run inside the inbound event's transaction (a bound Store), a resolved
case commits with the event's de-duplication.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.flow.loader import LoadedFlow
from bot.i18n import Translator, rounded_hours
from bot.reports.metrics import build_report
from bot.reports.tables import summary_text
from bot.staff_text import staff_line
from storage.cases import resolve_case
from storage.db import StorageError
from storage.repo import Store

COMMANDS = ("report", "resolve")
# \d: decimal digits of any script (9, ٩, ۹), not ² or ①, which int() refuses; 19 digits
# hold any 64-bit id, and a longer number is no id either.
_ID = re.compile(r"\d{1,19}")
# The most of a person's own text a reply echoes (a flow id after /report).
_ECHO = 64


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Photo:
    filename: str
    content: bytes


Outbound = Text | Photo


def refused(t: Translator) -> list[Outbound]:
    """The answer to a staff command from someone who is not staff."""
    return [Text(t.gettext("Sorry, this command is for the survey team only."))]


async def run(
    command: str, argument: str, *, staff: str, store: Store,
    flows: Mapping[str, LoadedFlow], lang: str, now: datetime,
) -> list[Outbound]:
    """One staff command (a name in COMMANDS) from `staff` ("channel:id"), answered in
    `lang`."""
    t = Translator(lang)
    if command == "resolve":
        return await _resolve(argument, staff=staff, store=store, t=t, now=now)
    if argument:
        return await _flow_report(argument.split()[0], store=store, flows=flows, lang=lang)
    counts = await store.session_counts()
    if not counts:
        return [Text(t.gettext("No survey sessions yet."))]
    lines = [t.gettext("Sessions by flow (completed / started):")]
    lines += [f"{flow}: {t.number(done)} / {t.number(total)}"
              for flow, (done, total) in sorted(counts.items())]
    return [Text("\n".join(t.line(line) for line in lines))]


async def _resolve(
    argument: str, *, staff: str, store: Store, t: Translator, now: datetime
) -> list[Outbound]:
    number, _, note = argument.partition(" ")
    case_id = record_id(number)
    if case_id is None or not note.strip():
        return [Text(t.gettext("Usage: /resolve CASE_NUMBER what was done"))]
    try:
        case = await resolve_case(store.database, case_id, note=note.strip(), by=staff, now=now)
    except StorageError as exc:
        return [Text(staff_line(str(exc)))]  # "already resolved" quotes a person's note
    hours = (case.resolved_at - case.opened_at).total_seconds() / 3600 \
        if case.resolved_at else 0.0
    # A number with decimals takes the "other" plural form in ar, fa and en (CLDR);
    # 100 stands for it, as in the reports.
    shown, n = rounded_hours(hours)
    return [Text(t.ngettext("Case {case} resolved, {hours} hour after the alert.",
                            "Case {case} resolved, {hours} hours after the alert.",
                            n, case=case.id, hours=shown))]


async def _flow_report(
    flow_id: str, *, store: Store, flows: Mapping[str, LoadedFlow], lang: str
) -> list[Outbound]:
    """`/report FLOW`: the headline numbers and the trend chart."""
    t = Translator(lang)
    loaded = flows.get(flow_id)
    if loaded is None:
        shown = flow_id if len(flow_id) <= _ECHO else flow_id[:_ECHO] + "…"
        return [Text(t.gettext("No flow {flow}. Flows: {flows}.", flow=staff_line(shown),
                               flows=", ".join(sorted(flows))))]
    # matplotlib costs every process that starts a controller ~0.6 s: loaded when a chart is
    from bot.reports.charts import trend_chart

    report = await build_report(store.database, loaded.flow, by="role")
    outs: list[Outbound] = [Text(summary_text(report))]
    chart = trend_chart(report, flow=loaded.flow,
                        lang=lang if lang in loaded.flow.languages else "en")
    if chart is not None:
        outs.append(Photo(f"{flow_id}-trend.png", chart.png))
    return outs


def record_id(text: str) -> int | None:
    """A record id (a case number) as staff type it, in any script's digits (12, ١٢, ۱۲);
    None for anything else, superscripts such as ² included. Whether a row can have that
    id is the storage layer's to say ("there is no case …")."""
    text = text.strip()
    return int(text) if _ID.fullmatch(text) else None
