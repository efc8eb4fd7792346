"""Students chat through the broker: the key never reaches them; courses and budgets hold."""

from __future__ import annotations

import time

import pytest

from .chat import chat, error_of, text_of
from .harness import PROVIDER_KEY, Hub, child_pid

pytestmark = pytest.mark.xdist_group("hub")


def test_a_student_chats_through_the_broker_to_the_model(hub: Hub) -> None:
    events = chat(hub.url, "alice", hub.login("alice"), "Say hello")
    assert error_of(events) is None, events
    assert text_of(events) == "Hello from the model"
    finished = next(e for e in events if e["type"] == "run_finished")
    assert finished["usage"]["output_tokens"] > 0


def test_the_provider_key_is_never_in_the_students_reach(hub: Hub) -> None:
    token = hub.login("alice")
    chat(hub.url, "alice", token, "Say hello")
    # The student's server process environment (what its kernels inherit).
    _, model = hub.hub_api("GET", "/users/alice")
    pid = model["servers"][""]["state"]["pid"]
    with open(f"/proc/{pid}/environ", "rb") as f:
        server_env = f.read()
    assert PROVIDER_KEY.encode() not in server_env
    assert b"JUPYTERHUB_API_TOKEN" in server_env  # what it uses instead
    # A kernel the student starts, asked for its environment.
    status, kernel = hub.request("POST", hub.user_url("alice", "/api/kernels"), token, {})
    assert status == 201, kernel
    try:
        kpid = _kernel_pid(pid)
        with open(f"/proc/{kpid}/environ", "rb") as f:
            assert PROVIDER_KEY.encode() not in f.read()
    finally:
        hub.request("DELETE", hub.user_url("alice", f"/api/kernels/{kernel['id']}"), token)
    # Every HTTP answer the student can get from their server and the broker.
    for url in (
        hub.user_url("alice", "/aiide/api/course"),
        hub.user_url("alice", "/aiide/api/status"),
        hub.user_url("alice", "/aiide/api/auth/me"),
        hub.broker_url + "api/me",
        hub.broker_url + "api/courses/ds101",
    ):
        _, body = hub.request("GET", url, token)
        assert PROVIDER_KEY not in str(body), url
    # Without a key of its own, the student's server still says the assistant is on.
    _, status = hub.request("GET", hub.user_url("alice", "/aiide/api/status"), token)
    model = status["model"]
    assert (model["configured"], model["help"]) == (True, None), model
    assert model["source"] == "the course's key broker"
    assert model["models"], model  # the models the agent can use through the broker
    # The broker's log and audit hold no key either.
    assert PROVIDER_KEY not in hub.log("hub")


def _kernel_pid(server_pid: int) -> int:
    # The sandbox's launcher may still be exec-ing the kernel when its start is answered
    # (seen on a loaded machine): look for a while.
    deadline = time.monotonic() + 15
    while (found := child_pid(server_pid, b"kernel")) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found is not None, "no kernel process under the student's server"
    return found


def test_a_student_calling_the_broker_without_a_hub_token_is_refused(hub: Hub) -> None:
    status, body = hub.request("GET", hub.broker_url + "api/me", "not-a-token")
    assert (status, body["code"]) == (401, "unauthenticated")


def test_a_student_cannot_change_the_course(hub: Hub) -> None:
    token = hub.login("bob")
    status, body = hub.request(
        "PATCH", hub.user_url("bob", "/aiide/api/course/ds101"), token, {"exam": {"enabled": True}}
    )
    assert status == 403, body
    status, body = hub.request(  # straight to the broker with their own hub token
        "PATCH", hub.broker_url + "api/courses/ds101", token, {"exam": {"enabled": True}}
    )
    assert (status, body["code"]) == (403, "forbidden")
