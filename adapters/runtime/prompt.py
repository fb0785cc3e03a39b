"""Prompt assembly: the ONE function that turns a chat with audio into prompt embeddings.

Training and serving both call `assemble_prompt`, so a served prompt is exactly the prompt the
adapter was trained on. The chat template is rendered with a text marker where each audio part goes;
the text between markers is tokenized and embedded through the LLM's own input-embedding module
(Gemma scales its embeddings there, a raw table lookup would not), and the audio embeddings are
spliced in at the markers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

# Never tokenized: it only marks, in the rendered template, where audio embeddings go.
AUDIO_SLOT = "<|aura_audio|>"

# Used when the LLM's tokenizer has no chat template (base models). Recorded in aura.json.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}System: {{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


class PromptError(ValueError):
    """A chat that cannot be rendered (bad roles, audio count mismatch, reserved marker in text)."""


@dataclass
class PromptEmbeds:
    embeds: torch.Tensor  # (positions, hidden)
    audio_spans: list[tuple[int, int]] = field(default_factory=list)  # (start, length) per audio part
    text_tokens: int = 0

    @property
    def audio_tokens(self) -> int:
        return sum(n for _, n in self.audio_spans)

    def __len__(self) -> int:
        return self.embeds.shape[0]


def _flatten_content(content, role: str) -> tuple[str, int]:
    """A message's content (a string, or OpenAI-style parts) → text with audio slots, audio count."""
    if isinstance(content, str):
        parts = [{"type": "text", "text": content}]
    elif isinstance(content, Sequence):
        parts = list(content)
    else:
        raise PromptError(f"{role} message content must be a string or a list of parts")
    pieces, n_audio = [], 0
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise PromptError("a text part needs a string 'text'")
            if AUDIO_SLOT in text:
                raise PromptError(f"text may not contain the reserved marker {AUDIO_SLOT!r}")
            pieces.append(text)
        elif kind in ("audio", "input_audio"):
            pieces.append(AUDIO_SLOT)
            n_audio += 1
        else:
            raise PromptError(f"unsupported content part type {kind!r}")
    return "\n".join(pieces), n_audio


def chat_template(tokenizer, override: str | None) -> str:
    """The template chats are rendered with: the bundle's own, else the tokenizer's, else a plain default."""
    return override or tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE


def render_chat(tokenizer, messages: list[dict], template: str | None, add_generation_prompt: bool = True) -> tuple[str, int]:
    """Render the chat template with AUDIO_SLOT markers; returns (text, number of audio parts)."""
    flat, n_audio = [], 0
    for m in messages:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "user", "assistant"):
            raise PromptError(f"unsupported message role {role!r}")
        text, n = _flatten_content(m.get("content", ""), role)
        flat.append({"role": role, "content": text})
        n_audio += n
    try:
        rendered = tokenizer.apply_chat_template(
            flat, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=chat_template(tokenizer, template)
        )
    except Exception as e:  # jinja raise_exception() in templates, e.g. "roles must alternate"
        raise PromptError(f"the chat template rejected the messages: {e}") from None
    return rendered, n_audio


def text_token_ids(tokenizer, text: str) -> list[int]:
    # The template already holds BOS where the model wants it.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def text_pieces(tokenizer, messages: list[dict], chat_template: str | None,
                add_generation_prompt: bool = True) -> tuple[list[list[int]], int]:
    """The rendered chat cut at its audio parts: token ids of the text before, between and after
    them (number of audio parts + 1 pieces, some maybe empty), and the number of audio parts."""
    rendered, n_audio = render_chat(tokenizer, messages, chat_template, add_generation_prompt)
    return [text_token_ids(tokenizer, piece) if piece else [] for piece in rendered.split(AUDIO_SLOT)], n_audio


def prompt_token_ids(tokenizer, messages: list[dict], chat_template: str | None) -> list[int]:
    """Token ids of a text-only chat: what the cascade sends, and what parity tests compare with."""
    rendered, n_audio = render_chat(tokenizer, messages, chat_template)
    if n_audio:
        raise PromptError("prompt_token_ids is for text-only chats")
    return text_token_ids(tokenizer, rendered)


def assemble_prompt(
    tokenizer,
    embed_tokens: EmbedFn,
    messages: list[dict],
    audio: Sequence[torch.Tensor] = (),
    *,
    chat_template: str | None = None,
    add_generation_prompt: bool = True,
) -> PromptEmbeds:
    """Chat with audio parts → prompt embeddings; `audio[i]` is the (n, hidden) embedding of part i."""
    pieces, n_audio = text_pieces(tokenizer, messages, chat_template, add_generation_prompt)
    if n_audio != len(audio):
        raise PromptError(f"the messages have {n_audio} audio parts but {len(audio)} audio clips were given")
    chunks: list[torch.Tensor] = []
    spans: list[tuple[int, int]] = []
    pos = text_tokens = 0
    for i, ids in enumerate(pieces):
        if ids:
            chunks.append(embed_tokens(torch.tensor(ids, dtype=torch.long)))
            pos += len(ids)
            text_tokens += len(ids)
        if i < len(audio):
            a = audio[i]
            spans.append((pos, a.shape[0]))
            chunks.append(a)
            pos += a.shape[0]
    if not chunks:
        raise PromptError("the prompt is empty")
    dtype = chunks[0].dtype
    embeds = torch.cat([c.to(dtype) for c in chunks])
    return PromptEmbeds(embeds=embeds, audio_spans=spans, text_tokens=text_tokens)
