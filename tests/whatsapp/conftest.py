from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.channels.whatsapp.transport import GraphClient, WhatsAppTransport
from tests.fakegraph import FakeGraphApi


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphApi]:
    async with FakeGraphApi() as fake:
        yield fake


def client_of(api: FakeGraphApi, base_url: str | None = None) -> GraphClient:
    return GraphClient(api.phone_number_id, api.access_token,
                       api_url=base_url or api.base_url, api_version=api.version)


@pytest.fixture
async def transport(graph: FakeGraphApi) -> AsyncIterator[WhatsAppTransport]:
    async with client_of(graph) as client:
        yield WhatsAppTransport(client, menu="Choose", short_body="Your answer:")
