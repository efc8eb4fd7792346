"""Small converters from aiide's messages (Anthropic-style content blocks) to the shapes
other APIs take, named by a descriptor's ``converter``. Each gives the template variables
``messages``, ``tools``, ``system`` and ``prompt``; images go in the API's own form (a
``data:`` URL for OpenAI-style APIs, base64 for Gemini, Bedrock and Ollama).

A new API shape is one function here and its name in ``CONVERTERS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .base import ModelRequest
from .openai_compat import to_openai_messages, to_openai_tools

Converted = dict[str, Any]


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _result_text(block: dict[str, Any]) -> str:
    result = block.get("content", "")
    if isinstance(result, str):
        return result
    return "".join(p.get("text", "") for p in result if p.get("type") == "text")


def _result_images(block: dict[str, Any]) -> list[dict[str, Any]]:
    result = block.get("content", "")
    return [] if isinstance(result, str) else [p for p in result if p.get("type") == "image"]


def _names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Tool call id -> tool name (APIs that answer a call by name, not by id)."""
    return {
        b["id"]: b["name"]
        for m in messages
        if not isinstance(m["content"], str)
        for b in m["content"]
        if b.get("type") == "tool_use"
    }


def openai(request: ModelRequest) -> Converted:
    return {
        "messages": to_openai_messages(request.system, request.messages),
        "tools": to_openai_tools(request.tools) or None,
        "system": request.system or None,
        "prompt": text_prompt(request),
    }


def anthropic(request: ModelRequest) -> Converted:
    return {
        "messages": request.messages,
        "tools": request.tools or None,
        "system": request.system or None,
        "prompt": text_prompt(request),
    }


#: JSON Schema keys Gemini's function declarations accept (it refuses others).
_GEMINI_SCHEMA = {"type", "description", "properties", "required", "items", "enum", "format",
                  "nullable", "minimum", "maximum", "anyOf"}  # fmt: skip


def _gemini_schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _gemini_schema(v) for k, v in schema.items() if k in _GEMINI_SCHEMA}
        if "properties" in schema:
            out["properties"] = {k: _gemini_schema(v) for k, v in schema["properties"].items()}
        return out
    if isinstance(schema, list):
        return [_gemini_schema(v) for v in schema]
    return schema


def gemini(request: ModelRequest) -> Converted:
    names = _names(request.messages)
    contents = []
    for message in request.messages:
        parts: list[dict[str, Any]] = []
        for block in _blocks(message["content"]):
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                parts.append({"text": block["text"]})
            elif kind == "image":
                source = block["source"]
                parts.append({"inlineData": {"mimeType": source["media_type"],
                                             "data": source["data"]}})  # fmt: skip
            elif kind == "tool_use":
                parts.append({"functionCall": {"name": block["name"],
                                               "args": block.get("input") or {}}})  # fmt: skip
            elif kind == "tool_result":
                name = names.get(block["tool_use_id"], "tool")
                response = {"content": _result_text(block)}
                parts.append({"functionResponse": {"name": name, "response": response}})
                for image in _result_images(block):
                    source = image["source"]
                    parts.append({"inlineData": {"mimeType": source["media_type"],
                                                 "data": source["data"]}})  # fmt: skip
        if parts:
            role = "model" if message["role"] == "assistant" else "user"
            contents.append({"role": role, "parts": parts})
    tools = None
    if request.tools:
        declared = [
            {"name": t["name"], "description": t.get("description", ""),
             "parameters": _gemini_schema(t["input_schema"])}
            for t in request.tools
        ]  # fmt: skip
        tools = [{"functionDeclarations": declared}]
    system = {"parts": [{"text": request.system}]} if request.system else None
    return {"messages": contents, "tools": tools, "system": system, "prompt": text_prompt(request)}


def _image_format(media_type: str) -> str:
    return media_type.split("/")[-1].replace("jpg", "jpeg")


def bedrock(request: ModelRequest) -> Converted:
    """Bedrock Converse: content lists of text / image bytes (base64) / toolUse / toolResult."""
    messages = []
    for message in request.messages:
        content: list[dict[str, Any]] = []
        for block in _blocks(message["content"]):
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                content.append({"text": block["text"]})
            elif kind == "image":
                source = block["source"]
                content.append({"image": {"format": _image_format(source["media_type"]),
                                          "source": {"bytes": source["data"]}}})  # fmt: skip
            elif kind == "tool_use":
                content.append({"toolUse": {"toolUseId": block["id"], "name": block["name"],
                                            "input": block.get("input") or {}}})  # fmt: skip
            elif kind == "tool_result":
                result: list[dict[str, Any]] = [{"text": _result_text(block) or "(no output)"}]
                for image in _result_images(block):
                    source = image["source"]
                    result.append({"image": {"format": _image_format(source["media_type"]),
                                             "source": {"bytes": source["data"]}}})  # fmt: skip
                status = "error" if block.get("is_error") else "success"
                content.append({"toolResult": {"toolUseId": block["tool_use_id"],
                                               "content": result, "status": status}})  # fmt: skip
        if content:
            messages.append({"role": message["role"], "content": content})
    tools = None
    if request.tools:
        specs = [
            {"toolSpec": {"name": t["name"], "description": t.get("description", "") or t["name"],
                          "inputSchema": {"json": t["input_schema"]}}}
            for t in request.tools
        ]  # fmt: skip
        tools = {"tools": specs}
    system = [{"text": request.system}] if request.system else None
    return {"messages": messages, "tools": tools, "system": system, "prompt": text_prompt(request)}


def ollama(request: ModelRequest) -> Converted:
    """Ollama's /api/chat: content is text, images a list of base64, tool results by role."""
    names = _names(request.messages)
    out: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    out = out if request.system else []
    for message in request.messages:
        texts, images, calls = [], [], []
        for block in _blocks(message["content"]):
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                texts.append(block["text"])
            elif kind == "image":
                images.append(block["source"]["data"])
            elif kind == "tool_use":
                function = {"name": block["name"], "arguments": block.get("input") or {}}
                calls.append({"function": function})
            elif kind == "tool_result":
                name = names.get(block["tool_use_id"], "tool")
                out.append({"role": "tool", "content": _result_text(block), "tool_name": name})
                images += [i["source"]["data"] for i in _result_images(block)]
        if texts or images or calls:
            entry: dict[str, Any] = {"role": message["role"], "content": "\n".join(texts)}
            if images:
                entry["images"] = images
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
    return {
        "messages": out,
        "tools": to_openai_tools(request.tools) or None,
        "system": request.system or None,
        "prompt": text_prompt(request),
    }


def text_prompt(request: ModelRequest) -> str:
    """One prompt string, for APIs that take text and give text."""
    lines = [f"System: {request.system}"] if request.system else []
    for message in request.messages:
        speaker = "Assistant" if message["role"] == "assistant" else "User"
        parts = []
        for block in _blocks(message["content"]):
            if block.get("type") == "text":
                parts.append(block.get("text", ""))
            elif block.get("type") == "tool_use":
                parts.append(f"[called {block['name']} {json.dumps(block.get('input') or {})}]")
            elif block.get("type") == "tool_result":
                parts.append(f"[result: {_result_text(block)}]")
            elif block.get("type") == "image":
                parts.append("[image]")
        lines.append(f"{speaker}: {' '.join(p for p in parts if p)}")
    return "\n\n".join(lines) + "\n\nAssistant:"


def text(request: ModelRequest) -> Converted:
    prompt = text_prompt(request)
    return {"messages": None, "tools": None, "system": request.system or None, "prompt": prompt}


CONVERTERS: dict[str, Callable[[ModelRequest], Converted]] = {
    "openai": openai,
    "anthropic": anthropic,
    "gemini": gemini,
    "bedrock": bedrock,
    "ollama": ollama,
    "text": text,
}
