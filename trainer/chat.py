"""Chat templates: how a conversation becomes token ids, which of them the model learns to predict, and
where generation starts and stops.

Each role has a format with one ``{content}``, e.g. ``assistant = "<|assistant|>\\n{content}<|endoftext|>"``.
Special tokens written in a format become their single id; the content is encoded as plain text, so a
special token typed by a user stays text. Of an assistant turn, the content and the text after it (the end
token) are learned; the text before it ends the prompt at generation time, and generation stops at the
first token after it. Fine-tuning and ``refinery generate`` use the same :class:`ChatTemplate`, saved in
the checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenizer.bpe import Tokenizer
from tokenizer.errors import invalid

ROLES = ("system", "user", "assistant")
_SPECIAL_LOOKING = re.compile(r"<\|[^|<>]*\|>")


@dataclass(kw_only=True)
class ChatTemplate:
    system: str = "{content}\n\n"
    user: str = "<|user|>\n{content}\n"
    assistant: str = "<|assistant|>\n{content}<|endoftext|>"

    def __post_init__(self):
        for role in ROLES:
            if getattr(self, role).count("{content}") != 1:
                raise invalid(role, "expected a format with exactly one {content}")


Message = tuple[str, str]  # (role, content)


class CompiledTemplate:
    """A :class:`ChatTemplate` bound to a tokenizer: the token ids around each role's content."""

    def __init__(self, template: ChatTemplate, tokenizer: Tokenizer):
        self.template = template
        self.tokenizer = tokenizer
        self.parts: dict[str, tuple[list[int], list[int]]] = {}
        for role in ROLES:
            before, after = getattr(template, role).split("{content}")
            self.parts[role] = (self._literal(role, before), self._literal(role, after))
        after_answer = self.parts["assistant"][1]
        eos = tokenizer.special_ids.get("<|endoftext|>")
        self.stop_id = after_answer[0] if after_answer else eos

    def _literal(self, role: str, text: str) -> list[int]:
        named = set(_SPECIAL_LOOKING.findall(text))
        missing = sorted(t for t in named if t not in self.tokenizer.special_ids)
        if missing:
            have = ", ".join(self.tokenizer.special_tokens) or "none"
            raise invalid(
                f"template.{role}",
                f"names {', '.join(missing)}, which the tokenizer does not have (its special tokens: {have})",
            )
        return self.tokenizer.encode(text)

    def encode(self, messages: list[Message]) -> tuple[list[int], list[bool]]:
        """Token ids of a whole conversation and, for each, whether the model learns to predict it (the
        content and closing text of every assistant turn)."""
        ids: list[int] = []
        learned: list[bool] = []
        for role, content in messages:
            before, after = self.parts[role]
            body = self.tokenizer.encode_ordinary(content)
            ids += before + body + after
            learned += [False] * len(before) + [role == "assistant"] * (len(body) + len(after))
        return ids, learned

    def prompt(self, messages: list[Message]) -> list[int]:
        """Token ids that ask for the next assistant turn: the conversation, then the assistant's opening."""
        ids, _ = self.encode(messages)
        return ids + self.parts["assistant"][0]

    def answer(self, ids: list[int]) -> str:
        """The text of generated ``ids``, up to the stop token."""
        if self.stop_id in ids:
            ids = ids[: ids.index(self.stop_id)]
        return self.tokenizer.decode(ids)
