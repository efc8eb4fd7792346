"""The messages of a model call: summary of old turns, recent turns, and the run's question
with its context block. Older turns are summarised by a model when over the budget."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..seams import Gate
from .context import ContextBuilder, split_history, tokens
from .fanout import Fanout
from .images import without_images
from .notebooks import NotebookBridge
from .providers import ModelRequest, TextDelta
from .runs import Run
from .store import Store
from .tools import ToolSource, definitions

if TYPE_CHECKING:
    from .router import ModelSpec, Router

log = logging.getLogger("aiide.agent")

SUMMARY_PROMPT = (
    "Summarise this conversation between a user and a coding assistant in at most 150 "
    "words, keeping facts, decisions, file and cell names. Reply with the summary only."
)


def merge(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join consecutive messages of one role (providers want them alternating)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        blocks = [b for b in blocks if b.get("type") != "text" or b.get("text")]
        if not blocks:
            continue
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": message["role"], "content": blocks})
    return out


def _with_images(block: dict[str, Any], kept: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A tool result with the plots its call drew (``Run.result_images``)."""
    found = kept.get(str(block.get("tool_use_id"))) if block.get("type") == "tool_result" else None
    if not found:
        return block
    text = block.get("content", "")
    inner = [{"type": "text", "text": text}] if isinstance(text, str) else list(text)
    return {**block, "content": [*inner, *found]}


class History:
    def __init__(
        self,
        store: Store,
        fanout: Fanout,
        router: Router,
        context: ContextBuilder,
        gate: Gate,
        notebooks: NotebookBridge,
        root_dir: str,
        knowledge: Callable[[], Any] = lambda: None,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.router = router
        self.context = context
        self.gate = gate
        self.notebooks = notebooks
        self.root_dir = root_dir
        self.knowledge = knowledge
        self.tool_source: ToolSource | None = None

    async def request(self, run: Run) -> Callable[[ModelSpec], ModelRequest]:
        """The request builder for this step (the model differs per fallback candidate)."""
        first = run.steps == 0
        knowledge = self.knowledge()
        # Budgets are in the model's tokens; counts here are estimates (calibration.py).
        model = self.router.tokenizer_of(run.models[0]) if run.models else None
        calibration = self.router.calibration
        turns = self.store.turns(run.conversation_id)
        items: list[dict[str, Any]] = []
        if first:
            question = next((t["content"] for t in turns if t["idx"] == run.question_idx), "")
            built = await self.context.build(
                run.context,
                self.root_dir,
                self.notebooks,
                knowledge=knowledge,
                caller=run.caller_obj(),
                question=str(question),
                budget=calibration.to_estimate(model, self.context.budget),
                vision=bool(run.models) and self.router.sees_images(run.models[0]),
            )
            run.context_text = built.text
            run.context_images = built.images
            items = built.items
        before = [t for t in turns if t["idx"] < run.question_idx]
        current = [t for t in turns if t["idx"] >= run.question_idx]
        summary = await self._summarised(
            run, before, calibration.to_estimate(model, self.context.history_budget)
        )
        conv = self.store.conversation(run.conversation_id) or {}
        before = [t for t in before if t["idx"] >= int(conv.get("summary_upto", 0))]
        messages: list[dict[str, Any]] = []
        if summary:
            messages.append(
                {
                    "role": "user",
                    "content": f"<earlier_summary>\n{summary}\n</earlier_summary>",
                }
            )
            messages.append({"role": "assistant", "content": "Noted."})
        messages += [{"role": t["role"], "content": t["content"]} for t in before]
        for t in current:
            content = t["content"]
            if t["idx"] == run.question_idx and run.context_text:
                content = [
                    {"type": "text", "text": run.context_text},
                    *run.context_images,
                    {"type": "text", "text": content},
                ]
            elif run.result_images and isinstance(content, list):
                content = [_with_images(b, run.result_images) for b in content]
            messages.append({"role": t["role"], "content": content})
        messages = merge(messages)
        extra = self.tool_source.tools() if self.tool_source is not None else None
        tools = (
            definitions(knowledge=knowledge is not None, extra=extra) if run.task == "agent" else []
        )
        # The project's rules follow the system prompt: they stay the same from step to
        # step and turn to turn, so they belong to the prefix a model caches.
        if first:
            rules_text = built.rules
        else:
            found = await self.context.project_rules(
                self.root_dir,
                run.context.get("notebook"),
                calibration.to_estimate(model, self.context.budget),
            )
            rules_text = found.render() if found is not None else ""
        system = self.context.system_prompt
        if rules_text:
            system += "\n\n" + rules_text
        guard = getattr(self.notebooks, "guard", None)
        if guard is not None:  # a course's help mode for this notebook
            system += guard.system_note(run.caller_obj(), run.context)
        if first:
            items = [
                {"kind": "system", "ref": "", "tokens": tokens(system) - tokens(rules_text)},
                {"kind": "tools", "ref": str(len(tools)), "tokens": tokens(str(tools))},
                *items,
            ]
            if before or summary:
                items.append(
                    {
                        "kind": "summary" if summary else "history",
                        "ref": "",
                        "tokens": tokens(str(messages[:-1])),
                    }
                )
            question = turns[run.question_idx]["content"] if run.question_idx < len(turns) else ""
            items.append({"kind": "question", "ref": "", "tokens": tokens(str(question))})
            for item in items:
                if item["kind"] != "image":  # counted in the model's tokens already
                    item["tokens"] = calibration.from_estimate(model, item["tokens"])
            self.fanout.emit(
                run.conversation_id,
                run.id,
                "context",
                tokens=sum(i["tokens"] for i in items),
                budget=self.context.budget,
                items=items,
            )

        def build(spec: ModelSpec) -> ModelRequest:
            return ModelRequest(
                model=spec.model,
                system=system,
                # A fallback that sees no images gets a note in each image's place.
                messages=messages if spec.vision else without_images(messages),
                tools=tools,
                max_tokens=spec.max_output_tokens,
            )

        return build

    async def _summarised(self, run: Run, before: list[dict[str, Any]], budget: int) -> str:
        conv = self.store.conversation(run.conversation_id) or {}
        summary = str(conv.get("summary", ""))
        upto = int(conv.get("summary_upto", 0))
        recent = [t for t in before if t["idx"] >= upto]
        cut = split_history(recent, budget)
        if cut == 0:
            return summary
        old = recent[:cut]
        text = "\n".join(f"{t['role']}: {t['content']}" for t in old)[-60000:]
        if summary:
            text = f"(summary so far) {summary}\n{text}"
        caller = run.caller_obj()
        new = ""
        try:
            candidates = self.router.candidates("summarise", caller)
            request = ModelRequest(
                model="",
                system=SUMMARY_PROMPT,
                messages=[{"role": "user", "content": text}],
                max_tokens=400,
            )

            def build(spec: ModelSpec) -> ModelRequest:
                request.model = spec.model
                return request

            async for _spec, event in self.router.stream(
                candidates, caller, build, gate=self.gate, feature="summarise"
            ):
                if isinstance(event, TextDelta):
                    new += event.text
        except Exception as e:  # a summary is a nicety: drop old turns instead
            log.warning("aiide: summarising failed (%s); dropping old turns", e)
            new = summary
        upto = old[-1]["idx"] + 1
        self.store.set_summary(run.conversation_id, new.strip(), upto)
        self.fanout.emit(
            run.conversation_id,
            run.id,
            "notice",
            code="summarised",
            message=f"{len(old)} earlier turns were summarised to fit the context",
        )
        return new.strip()
