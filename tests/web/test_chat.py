"""The web chat's server side over HTTP: a flow opened, its first question on the stream,
answers by press and by typing, a reload that resumes, forged buttons, bad requests in one
line, rate limits, CORS, the page and the widget file."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bot.channels.web import history
from bot.channels.web.http import MAX_BODY, VISITOR_BURST
from bot.channels.web.transport import WebTransport
from storage.db import Database
from tests.web.conftest import JSON, SHOP, Served, serve, settings

FLOW = "b2b-supplier"


def question(messages: list[JSON]) -> JSON:
    """The last message with buttons: the question to answer."""
    return next(m for m in reversed(messages) if m["kind"] == "message" and m.get("buttons"))


async def stream(served: Served, visitor: str, after: int, until: int = 1,
                 headers: dict[str, str] | None = None) -> list[JSON]:
    """Events of the visitor's stream until `until` messages with buttons came."""
    found: list[JSON] = []
    async with served.http.get(f"{served.base}/web/v1/stream",
                               params={"visitor": visitor, "after": str(after)},
                               headers=headers) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async with asyncio.timeout(20):
            async for raw in answer.content:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(": ")
                    event[name] = value
                    continue
                if "data" in event:
                    message = json.loads(event["data"])
                    assert event["id"] == str(message["seq"]) and event["event"] == "message"
                    found.append(message)
                    if sum(1 for m in found if m.get("buttons")) >= until:
                        return found
                event = {}
    raise AssertionError(f"the stream ended early: {found}")


async def test_opening_a_flow_starts_it_and_its_first_question_arrives_on_the_stream(
    served: Served,
) -> None:
    opened = await served.open(flow=FLOW, lang="en")
    assert opened["messages"] == [] and opened["last"] == 0
    assert (opened["lang"], opened["dir"]) == ("en", "ltr")
    assert len(opened["visitor"]) == 22
    events = await stream(served, opened["visitor"], opened["last"])
    first = question(events)
    assert first["lang"] == "en" and first["dir"] == "ltr" and first["id"] == first["seq"]
    assert all(isinstance(b["label"], str) and b["data"].startswith("s1:")
               for row in first["buttons"] for b in row)
    # Last-Event-ID wins over ?after: a reconnecting EventSource gets only what followed
    again = await stream(served, opened["visitor"], 0,
                         headers={"Last-Event-ID": str(first["seq"] - 1)})
    assert again[0]["seq"] == first["seq"]


async def test_answers_advance_and_a_reload_resumes_without_starting_again(
    served: Served, database: Database,
) -> None:
    opened = await served.open(flow=FLOW, lang="en")
    visitor = opened["visitor"]
    messages, last = await served.poll(visitor, 0)
    asked = question(messages)
    pressed = asked["buttons"][0][0]
    status, answer = await served.post("press", {"visitor": visitor, "data": pressed["data"]})
    assert (status, answer) == (202, {"ok": True})
    messages, last = await served.poll(visitor, last)
    assert messages[0] == {"seq": messages[0]["seq"], "kind": "visitor",
                           "text": pressed["label"], "dir": "ltr"}
    following = question(messages)
    assert following["id"] != asked["id"]

    # a reload: the same visitor opens the same flow again
    reopened = await served.open(visitor=visitor, flow=FLOW)
    assert reopened["visitor"] == visitor and reopened["last"] == last
    shown = reopened["messages"]
    assert [m for m in shown if m["kind"] == "visitor"] == [messages[0]]
    assert question(shown)["id"] == following["id"]  # the current question, buttons live
    await served.settled()
    assert await history.entries_after(database, visitor, last) == []  # nothing started

    # typing answers too; an edit (the pressed question's buttons) is already applied
    status, _ = await served.post("say", {"visitor": visitor, "text": "9"})
    assert status == 202
    more, _ = await served.poll(visitor, last)
    assert more[0]["kind"] == "visitor" and more[0]["text"] == "9"
    assert any(m["kind"] == "message" for m in more[1:])


async def test_a_forged_button_is_refused_as_the_bot_refuses_any(served: Served) -> None:
    opened = await served.open(flow=FLOW, lang="en")
    visitor = opened["visitor"]
    messages, last = await served.poll(visitor, 0)
    real = question(messages)["buttons"][0][0]["data"]
    forged = real[:-3] + ("zzz" if not real.endswith("zzz") else "yyy")
    status, _ = await served.post("press", {"visitor": visitor, "data": forged})
    assert status == 202
    after, _ = await served.poll(visitor, last)
    assert [m["kind"] for m in after] == ["notice"]  # the refusal; nothing stored as answered
    assert after[0]["text"]


@pytest.mark.parametrize(("name", "body", "status", "code"), [
    ("open", b"{not json", 400, "bad_json"),
    ("open", b"[1, 2]", 400, "bad_json"),
    ("open", {"flow": 7}, 400, "bad_field"),
    ("open", {"flow": "no-such-flow"}, 404, "unknown_flow"),
    ("open", {"flow": "post-support"}, 404, "unknown_flow"),  # not public
    ("open", {"token": "../../etc"}, 400, "bad_token"),
    ("open", {"lang": "de"}, 400, "bad_lang"),
    ("open", {"token": "abc", "flow": FLOW}, 400, "bad_field"),
    ("open", b"{" + b" " * MAX_BODY + b"}", 413, "too_large"),
    ("say", {"visitor": "x", "text": "hi"}, 400, "bad_visitor"),
    ("say", {"visitor": "A" * 22, "text": "hi"}, 404, "unknown_visitor"),
    ("say", {"visitor": None, "text": "hi"}, 400, "bad_field"),
    ("press", {"visitor": "A" * 22, "data": "s1:noop"}, 404, "unknown_visitor"),
])
async def test_bad_requests_get_one_line(
    served: Served, name: str, body: Any, status: int, code: str,
) -> None:
    got, answer = await served.post(name, body)
    assert got == status, answer
    assert answer["error"]["code"] == code
    assert "\n" not in answer["error"]["message"] and answer["error"]["message"]


async def test_a_known_visitors_bad_words_and_presses_get_one_line(served: Served) -> None:
    visitor = (await served.open(lang="en"))["visitor"]
    for body, status, code in (
        ({"visitor": visitor, "text": "x" * 4097}, 413, "too_long"),
        ({"visitor": visitor, "text": "   "}, 400, "empty_text"),
        ({"visitor": visitor, "text": ["hi"]}, 400, "bad_field"),
    ):
        got, answer = await served.post("say", body)
        assert (got, answer["error"]["code"]) == (status, code), answer
    got, answer = await served.post("press", {"visitor": visitor, "data": "x" * 2000})
    assert (got, answer["error"]["code"]) == (400, "bad_data")
    got, answer = await served.post("press", {"visitor": visitor})
    assert (got, answer["error"]["code"]) == (400, "bad_field")
    async with served.http.get(f"{served.base}/web/v1/stream",
                               params={"visitor": visitor, "after": "-1"}) as bad:
        assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_after"


async def test_a_visitor_typing_too_fast_is_answered_429(served: Served) -> None:
    visitor = (await served.open(lang="en"))["visitor"]
    # the burst at one instant: on a loaded machine eleven requests may take longer than
    # the half second in which the bucket gives one back
    frozen = served.chat.visitors.clock()
    served.chat.visitors.clock = lambda: frozen
    statuses = []
    for _ in range(VISITOR_BURST + 1):
        async with served.http.post(f"{served.base}/web/v1/say",
                                    json={"visitor": visitor, "text": "hello"}) as answer:
            statuses.append(answer.status)
            if answer.status == 429:
                assert int(answer.headers["Retry-After"]) >= 1
                assert (await answer.json())["error"]["code"] == "rate_limited"
    assert statuses == [202] * VISITOR_BURST + [429]
    await served.settled()


async def test_opens_from_one_address_are_limited(served: Served) -> None:
    served.chat.ips.burst = 3
    served.chat.ips.rate = 0.01
    statuses = [(await served.post("open", {}))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_cors_allows_the_listed_and_own_origins_only(served: Served) -> None:
    url = f"{served.base}/web/v1/open"
    async with served.http.options(url, headers={
            "Origin": SHOP, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}) as preflight:
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    for origin in (SHOP, served.base):
        async with served.http.post(url, json={}, headers={"Origin": origin}) as allowed:
            assert allowed.status == 200
            assert allowed.headers["Access-Control-Allow-Origin"] == origin
    for origin in ("https://evil.example.com", "https://shop.example.com.evil.com", "null"):
        async with served.http.post(url, json={}, headers={"Origin": origin}) as refused:
            assert refused.status == 403
            assert "Access-Control-Allow-Origin" not in refused.headers
            assert (await refused.json())["error"]["code"] == "origin"
        async with served.http.options(url, headers={"Origin": origin}) as preflight:
            assert preflight.status == 403


async def test_forwarded_headers_count_only_behind_a_trusted_proxy(
    database: Database, served: Served,
) -> None:
    forwarded = {"X-Forwarded-Host": "cx.example.com", "X-Forwarded-Proto": "https",
                 "Origin": "https://cx.example.com"}
    status, _ = await served.post("open", {}, **forwarded)
    assert status == 403  # anyone can send these headers: not believed by default
    async for behind in serve(database, settings(trust_proxy=True)):
        status, _ = await behind.post("open", {}, **forwarded)
        assert status == 200
        async with behind.http.get(f"{behind.base}/s/flow/{FLOW}", headers=forwarded) as page:
            assert 'src="https://cx.example.com/web/sada.js"' in await page.text()


async def test_the_page_holds_only_the_widget_with_a_strict_policy(served: Served) -> None:
    token = "AbCdEfGhIjKlMnOpQrStUv"
    async with served.http.get(f"{served.base}/s/{token}",
                               headers={"Accept-Language": "fa-IR,fa;q=0.9,en;q=0.5"}) as page:
        assert page.status == 200
        html = await page.text()
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert '<html lang="fa" dir="rtl">' in html
    assert f'data-token="{token}"' in html and 'data-mode="inline"' in html
    assert 'data-target="#sada"' in html and '<div id="sada"></div>' in html
    assert html.count("<script") == 1 and "</script>" in html.split("src=", 1)[1]
    async with served.http.get(f"{served.base}/s/flow/{FLOW}") as page:
        html = await page.text()
        assert '<html lang="en" dir="ltr">' in html and f'data-flow="{FLOW}"' in html
    for bad in ("/s/", "/s/a%22b", "/s/flow/..%2F..", "/s/flow/", "/s/flow/post-support"):
        async with served.http.get(f"{served.base}{bad}") as page:
            assert page.status == 404, bad


async def test_the_widget_is_served_cacheable(served: Served) -> None:
    async with served.http.get(f"{served.base}/web/sada.js") as script:
        if script.status == 404:  # the browser side is not in this checkout yet
            pytest.skip("bot/channels/web/static/sada.js is not there")
        assert script.status == 200
        assert script.headers["Content-Type"].startswith("application/javascript")
        assert script.headers["Cache-Control"] == "public, max-age=300"
        assert (await script.read()).strip()


async def test_a_stream_of_an_unknown_visitor_is_404(served: Served) -> None:
    async with served.http.get(f"{served.base}/web/v1/stream",
                               params={"visitor": "B" * 22}) as answer:
        assert answer.status == 404
    with pytest.raises(aiohttp.ClientResponseError):
        async with served.http.get(f"{served.base}/web/v1/poll", params={"visitor": "bad"},
                                   raise_for_status=True):
            pass


async def test_forget_erases_the_conversation_kept_for_the_page(
    served: Served, database: Database,
) -> None:
    opened = await served.open(flow=FLOW, lang="en")
    visitor = opened["visitor"]
    messages, last = await served.poll(visitor, 0)
    await served.post("say", {"visitor": visitor, "text": "/forget"})
    messages, last = await served.poll(visitor, last)
    confirm = question(messages)["buttons"][0][0]
    assert confirm["data"] == "s1:x:yes"
    await served.post("press", {"visitor": visitor, "data": confirm["data"]})
    await served.settled()
    left = await history.entries_after(database, visitor, 0)
    assert left and all(m["seq"] > last for m in left)  # only "Done: … erased" and its edit
    assert not any(m["kind"] == "visitor" for m in left)
    reopened = await served.open(visitor=visitor, flow=FLOW)  # starts afresh
    assert not any(m["kind"] == "visitor" for m in reopened["messages"])


async def test_control_characters_are_dropped_before_anything_is_stored(
    served: Served, database: Database,
) -> None:
    visitor = (await served.open(lang="en"))["visitor"]
    status, _ = await served.post("say", {"visitor": visitor, "text": "go\u0000od\u200e"})
    assert status == 202
    await served.settled()
    [said, *_] = await history.entries_after(database, visitor, 0)
    assert said["kind"] == "visitor" and said["text"] == "good\u200e"
    status, answer = await served.post("say", {"visitor": visitor, "text": "\u0000\u0001"})
    assert (status, answer["error"]["code"]) == (400, "empty_text")


async def test_a_message_written_by_another_process_reaches_the_stream(
    served: Served, database: Database,
) -> None:
    """Another `sada run` (its follow-ups) writes with waiters of its own: this process's
    stream finds the message on its next look at the database."""
    served.chat.look_again = 0.05
    visitor = (await served.open(lang="en"))["visitor"]
    elsewhere = WebTransport(database)  # not the chat's: nobody here is woken
    assert elsewhere.waiters is not served.chat.waiters

    async def later() -> None:
        await asyncio.sleep(0.1)
        await elsewhere.send_text(visitor, "Your survey is waiting", None)

    writing = asyncio.create_task(later())
    async with asyncio.timeout(5), served.http.get(
            f"{served.base}/web/v1/stream", params={"visitor": visitor, "after": "0"}) as answer:
        async for raw in answer.content:
            if raw.startswith(b"data: "):
                assert json.loads(raw[6:])["text"] == "Your survey is waiting"
                break
    await writing
