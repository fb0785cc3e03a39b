import pytest
import torch

from adapters.runtime.llm_io import load_tokenizer
from adapters.runtime.prompt import AUDIO_SLOT, PromptError, assemble_prompt, prompt_token_ids, render_chat


@pytest.fixture(scope="module")
def tok(tiny):
    return load_tokenizer(tiny["llm"])


def fake_embed(ids: torch.Tensor) -> torch.Tensor:
    return ids.float()[:, None].repeat(1, 4)


def test_audio_is_spliced_where_the_part_is(tok):
    audio = [torch.full((3, 4), -1.0), torch.full((2, 4), -2.0)]
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "audio"}, {"type": "input_audio"}]},
    ]
    p = assemble_prompt(tok, fake_embed, msgs, audio)
    assert p.audio_tokens == 5
    assert len(p) == p.text_tokens + 5
    (s1, n1), (s2, n2) = p.audio_spans
    assert (n1, n2) == (3, 2)
    assert torch.all(p.embeds[s1 : s1 + 3] == -1) and torch.all(p.embeds[s2 : s2 + 2] == -2)
    # the text around the audio is the template's text, tokenized piece by piece
    rendered, _ = render_chat(tok, msgs, None)
    before = rendered.split(AUDIO_SLOT)[0]
    assert p.embeds[:s1, 0].tolist() == tok(before, add_special_tokens=False)["input_ids"]


def test_text_only_prompt_equals_token_ids(tok):
    msgs = [{"role": "user", "content": "what is the weather"}]
    p = assemble_prompt(tok, fake_embed, msgs, [])
    assert p.embeds[:, 0].long().tolist() == prompt_token_ids(tok, msgs, None)


@pytest.mark.parametrize(
    "msgs,audio,match",
    [
        ([{"role": "user", "content": [{"type": "audio"}]}], [], "1 audio parts but 0"),
        ([{"role": "user", "content": f"hi {AUDIO_SLOT}"}], [], "reserved marker"),
        ([{"role": "tool", "content": "x"}], [], "role"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], [], "unsupported content part"),
        ([{"role": "user", "content": 3}], [], "string or a list"),
    ],
)
def test_bad_chats_are_clear_errors(tok, msgs, audio, match):
    with pytest.raises(PromptError, match=match):
        assemble_prompt(tok, fake_embed, msgs, audio)
