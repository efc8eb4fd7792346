"""Exam settings changed while on, and the models the broker can serve (issue 21, findings
7 and 8), without a hub: the rules behind tests/hub/test_exam_settings.py and
test_model_switch.py."""

from __future__ import annotations

from aiide_server_ext.hub.broker.serving import unservable
from aiide_server_ext.hub.course import Course, merge_changes

FILE = Course.parse("ds101", {"groups": ["students"], "exam": {"disable": ["chat"]}})


def test_an_exam_change_merges_field_by_field_and_null_goes_back_to_the_file() -> None:
    stored = merge_changes(FILE, {}, {"exam": {"enabled": True, "message": "Midterm"}})
    stored = merge_changes(FILE, stored, {"exam": {"disable": ["chat", "agent"]}})
    course = FILE.with_changes(stored)
    assert (course.exam.enabled, course.exam.text) == (True, "Midterm")
    assert course.exam.disable == {"chat", "agent"}
    stored = merge_changes(FILE, stored, {"exam": {"message": None, "disable": None}})
    assert FILE.with_changes(stored).exam.disable == {"chat"}  # the file's again
    assert merge_changes(FILE, stored, {"exam": None}) == {}


def test_the_default_message_says_what_is_off_and_what_stays_on() -> None:
    exam = FILE.with_changes({"exam": {"enabled": True, "disable": ["chat", "complete"]}}).exam
    assert exam.text == (
        "Exam mode is on: chat and inline completion are off until the exam ends "
        "(the agent's code execution stays on)."
    )
    every = FILE.with_changes({"exam": {"disable": ["chat", "agent", "complete"]}}).exam
    assert "the assistant is unavailable" in every.text


def test_a_model_is_servable_only_by_a_provider_with_a_key() -> None:
    upstreams = {
        "anthropic": {"api_key_file": "/k/anthropic.key"},
        "openai": {"api_key_env": "NO_SUCH_KEY"},
        "local": {"models": ["llama-"], "api_key_env": "LOCAL_KEY"},
    }
    keys = {"anthropic": "sk-a", "openai": None, "local": "k"}
    assert unservable(["claude-haiku-4-5", "llama-3-8b"], upstreams, keys) == []
    [gpt] = unservable(["gpt-4o-mini"], upstreams, keys)
    assert gpt == (
        "gpt-4o-mini: the broker has no key for openai "
        "(openai: NO_SUCH_KEY is not set in the broker's environment)"
    )
    [other] = unservable(["mistral-large"], upstreams, keys)
    assert other.startswith("mistral-large: no provider configured at the broker serves it")
    assert "local serves llama-*" in other


def test_turning_exam_mode_on_or_off_without_a_message_drops_the_last_ones() -> None:
    stored = merge_changes(FILE, {}, {"exam": {"enabled": True, "message": "Midterm"}})
    stored = merge_changes(FILE, stored, {"exam": {"enabled": False}})
    stored = merge_changes(FILE, stored, {"exam": {"enabled": True, "disable": ["chat"]}})
    assert FILE.with_changes(stored).exam.text.startswith("Exam mode is on: chat is off")
