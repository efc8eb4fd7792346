"""Real HTTP servers that speak the model providers' APIs, scriptable per test.

The product reaches them only through ``base_url``, exactly as it reaches the real
services; nothing inside the product knows it is talking to a fake.
"""

from .fake_anthropic import FakeAnthropic
from .fake_openai import FakeOpenAI
from .script import Reply, ToolUse

__all__ = ["FakeAnthropic", "FakeOpenAI", "Reply", "ToolUse"]
