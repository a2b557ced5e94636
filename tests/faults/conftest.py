"""The fork server the kill -9 tests start their `sada run`s from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.test_answer_faults import Zygote


@pytest.fixture(scope="session")
def zygote() -> Iterator[Zygote]:
    """One per test process, shared by test_answer_faults and test_one_transaction: it
    imports the bot once (seconds of CPU) and forks a fresh `sada run` per life."""
    forks = Zygote()
    try:
        forks.ready()
        yield forks
    finally:
        forks.close()
