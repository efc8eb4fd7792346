"""``%ai`` / ``%%ai``: ask the aiide assistant from inside a kernel.

    %load_ext aiide_kernel.magics
    %ai explain what df.groupby does here
    %%ai --format code --vars df
    plot the monthly mean of df.temp

The request goes over the kernel's local channel (a unix socket the aiide server
provides inside the sandbox, see ``aiide_kernel.channel``), never the network, and
is answered under the kernel owner's identity, scopes, limits and metering.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shlex
import socket
from typing import Any

from .channel import ENV_VAR

#: Model text (Markdown) for the labextension, which renders it through the chat's sanitizer
#: (never as trusted Markdown/HTML: a prompt-injected answer must not script the lab).
MODEL_TEXT_MIME = "application/vnd.aiide.model-text+markdown"

NOT_UNDER_AIIDE = (
    "aiide: %ai needs a kernel started by aiide: the 'Python 3 (sandboxed)' kernel of a "
    "Jupyter server with aiide, or of a headless run (jupyter aiide run); this kernel has "
    f"no channel to one (${ENV_VAR} is not set)."
)
#: ``%ai question?``: IPython reads a line ending in ``?`` as a help request for the
#: magic (``%ai?``) and runs nothing. This line is the magic's, question mark and all.
AI_LINE = re.compile(r"^(?P<indent>[ \t]*)%ai(?P<rest>(?:[ \t].*)?)\?(?P<end>[ \t]*\r?\n?)$")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def ask_server(body: dict[str, Any], timeout: float = 300.0) -> tuple[int, dict[str, Any]]:
    """POST to the channel; returns (status, JSON reply). Raises RuntimeError when
    there is no channel."""
    path = os.environ.get(ENV_VAR)
    if not path:
        raise RuntimeError(NOT_UNDER_AIIDE)
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("POST", "/v1/ask", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except OSError as e:
        raise RuntimeError(f"aiide: the server channel is not answering ({e})") from e
    finally:
        conn.close()


def summarize(value: Any) -> dict[str, Any]:
    """Type, shape, length and columns of a variable: what the model needs to help,
    never the data itself (the user pastes data into the question if they mean to)."""
    info: dict[str, Any] = {"type": f"{type(value).__module__}.{type(value).__qualname__}"}
    shape = getattr(value, "shape", None)
    if shape is not None:
        info["shape"] = list(shape) if isinstance(shape, tuple) else str(shape)
    dtypes = getattr(value, "dtypes", None)
    if dtypes is not None and hasattr(dtypes, "items"):
        info["columns"] = {str(k): str(v) for k, v in list(dtypes.items())[:50]}
    elif hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError):
            info["len"] = len(value)
    return info


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="%ai", add_help=False)
    p.add_argument("--model", default=None)
    p.add_argument("--format", choices=["code", "markdown", "text"], default="markdown")
    p.add_argument("--vars", default="", help="comma-separated variables to describe")
    p.add_argument("words", nargs="*")
    return p


def run_magic(line: str, cell: str | None, user_ns: dict[str, Any]) -> dict[str, Any] | str:
    """Build the request from the magic's arguments and send it; returns the reply
    or an error message for the user."""
    try:
        args = _parser().parse_args(shlex.split(line))
    except SystemExit:
        return "usage: %ai [--model M] [--format code|markdown|text] [--vars a,b] question"
    prompt = cell if cell is not None else " ".join(args.words)
    if cell is not None and args.words:
        args.model = args.model or args.words[0]
    if not prompt.strip():
        return "aiide: %ai needs a question (in the line, or in the cell for %%ai)"
    variables = {}
    for name in filter(None, (v.strip() for v in args.vars.split(","))):
        if name not in user_ns:
            return f"aiide: no variable named {name!r}"
        variables[name] = summarize(user_ns[name])
    body = {"prompt": prompt, "model": args.model, "format": args.format, "variables": variables}
    try:
        status, reply = ask_server(body)
    except RuntimeError as e:
        return str(e)
    if status != 200:
        return f"aiide: {reply.get('message', 'request failed')} ({reply.get('code', status)})"
    reply.setdefault("format", args.format)
    return reply


def model_text_bundle(text: str) -> dict[str, str]:
    """The display bundle of a Markdown answer: the model-text MIME type (rendered
    sanitized by aiide's labextension) and plain text for every other front end. Never
    ``text/markdown`` or ``text/html``, which a lab renders as trusted live output."""
    return {MODEL_TEXT_MIME: text, "text/plain": text}


def keep_question_marks(lines: list[str]) -> list[str]:
    """An input transformer (run before IPython's help syntax): ``%ai ...?`` lines become
    the explicit magic call, so the question reaches the model with its ``?``. A cell
    magic (``%%ai``) is left alone: its question is the cell body, never help syntax."""
    if lines and lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        m = AI_LINE.match(line)
        if m is None or not m["rest"].strip():  # ``%ai?`` alone: the magic's help
            out.append(line)
            continue
        question = m["rest"].strip() + "?"
        newline = "\n" if line.endswith("\n") else ""
        out.append(f"{m['indent']}get_ipython().run_line_magic('ai', {question!r}){newline}")
    return out


def load_ipython_extension(ipython: Any) -> None:
    from IPython.core.error import UsageError
    from IPython.core.magic import Magics, line_cell_magic, magics_class
    from IPython.display import Code, display

    if keep_question_marks not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(keep_question_marks)

    @magics_class
    class AiMagics(Magics):  # type: ignore[misc]
        @line_cell_magic  # type: ignore[misc]
        def ai(self, line: str, cell: str | None = None) -> None:
            assert self.shell is not None
            reply = run_magic(line, cell, self.shell.user_ns)
            if isinstance(reply, str):  # the cell fails: a run of the notebook stops here
                raise UsageError(reply)
            text = str(reply.get("text", ""))
            if reply["format"] == "code":
                display(Code(text, language="python"))  # type: ignore[no-untyped-call]
            elif reply["format"] == "markdown":
                display(model_text_bundle(text), raw=True)  # type: ignore[no-untyped-call]
            else:
                print(text)

    ipython.register_magics(AiMagics)
