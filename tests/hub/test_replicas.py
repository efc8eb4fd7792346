"""Two broker processes sharing one Redis: rate limits and budgets hold exactly across both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from tornado.httpclient import AsyncHTTPClient

from .harness import BODY, COURSE, QUIET_STUDENT, Hub

pytestmark = pytest.mark.xdist_group("hub")


@pytest.fixture
def two_brokers(hub: Hub) -> Iterator[Hub]:
    if hub.broker2 is None:
        hub.start_broker2()
    yield hub
    reset = {"rate_limits": COURSE["rate_limits"], "budget": COURSE["budget"]}
    status, _ = hub.request("PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"), reset)
    assert status == 200


async def _burst(urls: list[str], token: str) -> list[int]:
    client = AsyncHTTPClient(force_instance=True, max_clients=len(urls))

    async def one(url: str) -> int:
        r = await client.fetch(
            url, method="POST", body=json.dumps(BODY), raise_error=False, request_timeout=60,
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        )  # fmt: skip
        return int(r.code)

    try:
        return list(await asyncio.gather(*(one(u) for u in urls)))
    finally:
        client.close()


def test_a_rate_limit_holds_exactly_across_two_brokers(two_brokers: Hub) -> None:
    hub = two_brokers
    status, _ = hub.request(
        "PATCH", hub.broker_url + "api/courses/ds101", hub.login("ian"),
        {"rate_limits": {"model": "25/minute"}},
    )  # fmt: skip
    assert status == 200
    urls = [b + "anthropic/v1/messages" for b in (hub.broker_url, hub.broker2_url)] * 30
    statuses = asyncio.run(_burst(urls, hub.login(QUIET_STUDENT)))
    assert (statuses.count(200), statuses.count(429)) == (25, 35), statuses


def test_a_budget_spent_through_one_broker_is_spent_at_the_other(two_brokers: Hub) -> None:
    hub = two_brokers
    token = hub.login("bob")
    assert asyncio.run(_burst([hub.broker_url + "anthropic/v1/messages"], token)) == [200]
    _, me = hub.request("GET", hub.broker2_url + "api/me", token)
    used = me["used"]["daily_tokens"]
    assert used > 0
    status, _ = hub.request(
        "PATCH", hub.broker2_url + "api/courses/ds101", hub.login("ian"),
        {"budget": {"daily_tokens": used}},
    )  # fmt: skip
    assert status == 200
    for url in (hub.broker_url, hub.broker2_url):
        status, reply = hub.request("POST", url + "anthropic/v1/messages", token, BODY)
        assert (status, reply["code"]) == (402, "budget_exceeded"), url
