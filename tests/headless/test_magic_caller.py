"""``%ai`` answers as whoever started the kernel, not as the exempt server owner.

A real server with the gateway, real sandboxed kernels started through Jupyter's API
with API keys, and the kernel's local channel driven over its unix socket as the
magic drives it (``POST /v1/ask``). On the old code every request here was answered
as the owner: scopes ``*``, no rate limit, no quota.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from fakes import FakeAnthropic, Reply
from gateway.helpers import OWNER, SECRET, Call, key_maker, server_client
from kernelrun import ask_channel as ask

pytestmark = pytest.mark.xdist_group("headless")

SERVER = {
    "jpserver_extensions": {"aiide_server_ext": True},
    "identity_provider_class": "aiide_server_ext.gateway.identity.GatewayIdentityProvider",
    "authorizer_class": "aiide_server_ext.gateway.authorizer.GatewayAuthorizer",
}
GATEWAY = {
    "signing_secret": SECRET,
    "owner": OWNER,
    "roles": {"student": ["chat", "kernels"]},
    "user_roles": {"bob": ["student"], "eve": ["student"]},
    "rate_limits": {"magic": "2/minute"},
}
CONFIG = {"ServerApp": SERVER, "Gateway": GATEWAY}


@pytest.fixture
def call(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> Call:
    """The gateway suite's client."""
    return server_client(jp_serverapp, jp_http_port, jp_base_url)


@pytest.fixture
def new_key(call: Call) -> Any:
    return key_maker(call, "magic-test")


async def start_kernel(call: Call, jp_serverapp: Any, **auth: Any) -> str:
    """A sandboxed kernel started through Jupyter's API; the path of its channel socket."""
    await jp_serverapp.extension_manager.start_all_extensions()
    r = await call("POST", "/api/kernels", body={"name": "aiide-python"}, **auth)
    assert r.status == 201, r.body
    km = jp_serverapp.kernel_manager.get_kernel(r.json()["id"])
    return os.path.join(os.path.dirname(km.connection_file), "aiide.sock")


async def bob_key(new_key: Any, scopes: list[str] | None = None) -> str:
    key = await new_key(user="bob", scopes=scopes or ["chat", "kernels"])
    return str(key["key"])


@pytest.mark.agent_config(**CONFIG)
async def test_a_kernel_started_by_a_limited_user_gets_429_after_the_limit(
    call: Call, new_key: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    sock = await start_kernel(call, jp_serverapp, token=await bob_key(new_key))
    assert (await ask(sock))[0] == 200
    assert (await ask(sock))[0] == 200
    status, body = await ask(sock)
    assert (status, body["code"]) == (429, "rate_limited")


@pytest.mark.agent_config(**CONFIG)
async def test_the_owners_exemption_stays_with_the_owners_kernels(
    call: Call, new_key: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(*[Reply(text="ok")] * 5)
    mine = await start_kernel(call, jp_serverapp, jupyter=True)
    for _ in range(3):
        assert (await ask(mine))[0] == 200  # the owner: exempt, as before
    bobs = await start_kernel(call, jp_serverapp, token=await bob_key(new_key))
    statuses = [(await ask(bobs))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.agent_config(**CONFIG)
async def test_the_magic_needs_the_starters_chat_scope(
    call: Call, new_key: Any, jp_serverapp: Any
) -> None:
    sock = await start_kernel(call, jp_serverapp, token=await bob_key(new_key, ["kernels"]))
    status, body = await ask(sock)
    assert (status, body["code"]) == (403, "insufficient_scope")


@pytest.mark.agent_config(**CONFIG)
async def test_revoking_the_starters_key_ends_the_magic(
    call: Call, new_key: Any, jp_serverapp: Any
) -> None:
    key = await new_key(user="bob", scopes=["chat", "kernels"])
    sock = await start_kernel(call, jp_serverapp, token=key["key"])
    r = await call("DELETE", f"/aiide/api/keys/{key['id']}", jupyter=True)
    assert r.status == 200, r.body
    status, body = await ask(sock)
    assert (status, body["code"]) == (401, "source_revoked")


@pytest.mark.agent_config(**CONFIG)
async def test_the_magic_is_metered_and_audited_as_its_caller(
    call: Call, new_key: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(Reply(text="fine"))
    sock = await start_kernel(call, jp_serverapp, token=await bob_key(new_key))
    assert (await ask(sock))[0] == 200
    r = await call("GET", "/aiide/api/audit?action=agent.magic", jupyter=True)
    events = r.json()["events"]
    assert [(e["actor"], e["outcome"]) for e in events] == [("bob", "ok")]
    usage = await call("GET", "/aiide/api/usage?user=bob&by=feature", jupyter=True)
    assert [row["feature"] for row in usage.json()["rows"]] == ["magic"]


@pytest.mark.agent_config(**CONFIG)
async def test_a_burst_of_connections_beyond_the_cap_is_refused(
    call: Call, new_key: Any, jp_serverapp: Any
) -> None:
    from aiide_kernel.channel import KernelChannels

    sock = await start_kernel(call, jp_serverapp, token=await bob_key(new_key))
    cap = KernelChannels.instance().max_connections
    held = [await asyncio.open_unix_connection(sock) for _ in range(cap)]
    try:
        await asyncio.sleep(0.2)  # the server has accepted them all
        status, body = await ask(sock)
        assert (status, body["code"]) == (503, "too_many_connections")
        assert "connections" in body["message"]
    finally:
        for _, writer in held:
            writer.close()


@pytest.mark.agent_config(**CONFIG)
async def test_a_restart_by_the_owner_does_not_lend_the_owners_exemption(
    call: Call, new_key: Any, jp_serverapp: Any, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.push(*[Reply(text="ok")] * 3)
    await jp_serverapp.extension_manager.start_all_extensions()
    r = await call(
        "POST", "/api/kernels", body={"name": "aiide-python"}, token=await bob_key(new_key)
    )
    kid = r.json()["id"]
    restart = await call("POST", f"/api/kernels/{kid}/restart", jupyter=True)
    assert restart.status == 200, restart.body
    km = jp_serverapp.kernel_manager.get_kernel(kid)
    sock = os.path.join(os.path.dirname(km.connection_file), "aiide.sock")
    statuses = [(await ask(sock))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
