"""Real HTTP servers that speak the model providers' APIs, scriptable per test.

The product reaches them only through ``base_url``, exactly as it reaches the real
services; nothing inside the product knows it is talking to a fake.
"""

from .fake_anthropic import FakeAnthropic
from .fake_azure import FakeAzure
from .fake_bedrock import FakeBedrock
from .fake_gemini import FakeGemini
from .fake_ollama import FakeOllama
from .fake_openai import FakeOpenAI
from .fake_textapi import FakeTextApi
from .script import Reply, ToolUse

__all__ = [
    "FakeAnthropic",
    "FakeAzure",
    "FakeBedrock",
    "FakeGemini",
    "FakeOllama",
    "FakeOpenAI",
    "FakeTextApi",
    "Reply",
    "ToolUse",
]
