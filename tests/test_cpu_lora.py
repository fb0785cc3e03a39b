"""The CPU multi-LoRA kernels this package gives vLLM (service/engines/cpu_lora.py): vLLM's results
where vLLM is right, nothing for a token without a LoRA, and a canary for when vLLM fixes its own."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import torch

from service.engines import cpu_lora

SLOTS, RANK, WIDTH, OUT = 3, 4, 24, 40


def _case(indices: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(indices), WIDTH, generator=g)
    a = torch.randn(SLOTS, 1, RANK, WIDTH, generator=g)  # shrink weights: (slots, 1, rank, width)
    b = torch.randn(SLOTS, 1, OUT, RANK, generator=g)  # expand weights: (slots, 1, out, rank)
    return x, a, b, torch.tensor(indices)


@pytest.mark.parametrize("indices", [[0, 0, 0, 0], [2, 0, 1, 2, 0], [1]])
def test_the_kernels_give_vllms_results_on_valid_indices(indices):
    x, a, b, idx = _case(indices)
    ours, theirs = torch.zeros(len(indices), RANK), torch.zeros(len(indices), RANK)
    cpu_lora.bgmv_shrink(x, a, ours, idx, 0.5)
    cpu_lora.UPSTREAM["bgmv_shrink"](x, a, theirs, idx, 0.5)
    torch.testing.assert_close(ours, theirs)
    base = torch.randn(len(indices), OUT + 8)
    ours, theirs = base.clone(), base.clone()
    cpu_lora.bgmv_expand_slice(ours[:, :RANK].clone(), b, ours, idx, 8, OUT, True)
    cpu_lora.UPSTREAM["bgmv_expand_slice"](theirs[:, :RANK].clone(), b, theirs, idx, 8, OUT, True)
    torch.testing.assert_close(ours, theirs)
    ours, theirs = base[:, :OUT].clone(), base[:, :OUT].clone()
    y = torch.randn(len(indices), RANK)
    cpu_lora.bgmv_expand(y, b, ours, idx, True)
    cpu_lora.UPSTREAM["bgmv_expand"](y, b, theirs, idx, True)
    torch.testing.assert_close(ours, theirs)


def test_an_index_buffer_refilled_in_place_is_grouped_again():
    # vLLM refills one index buffer in place each step (update_metadata) and passes views of it to
    # every layer: the kernels remember its grouping for the step, not into the next.
    x, a, _, _ = _case([0] * 4)
    buffer = torch.tensor([0, 0, 0, 0, 9])
    for step in ([0, 0, 0, 0], [2, -1, 1, 2], [1, 1, 1, 1], [-1, -1, -1, -1]):
        buffer[:4] = torch.tensor(step)
        cpu_lora.STEP.new_step()  # what register()'s wrapper of PunicaWrapperCPU.update_metadata does
        for _layer in range(2):
            ours, theirs = torch.zeros(4, RANK), torch.zeros(4, RANK)
            cpu_lora.bgmv_shrink(x, a, ours, buffer[:4], 1.0)
            cpu_lora.bgmv_shrink(x, a, theirs, torch.tensor([max(i, 0) for i in step]), 1.0)
            theirs[torch.tensor(step) < 0] = 0  # (vLLM would give those rows the last slot)
            torch.testing.assert_close(ours, theirs)


def test_prefill_form_expands_one_index_per_sequence():
    x, a, _, _ = _case([0] * 5)
    per_seq, lens = torch.tensor([1, -1, 2]), torch.tensor([2, 1, 2])
    ours, expected = torch.zeros(5, RANK), torch.zeros(5, RANK)
    cpu_lora.sgmv_shrink(x, a, ours, None, lens, per_seq, 3, 2, 5, 1.0)
    cpu_lora.bgmv_shrink(x, a, expected, torch.tensor([1, 1, -1, 2, 2]), 1.0)
    torch.testing.assert_close(ours, expected)


def test_a_token_without_a_lora_gets_nothing():
    x, a, b, idx = _case([0, -1, 1, -1])
    shrunk = torch.full((4, RANK), 7.0)
    cpu_lora.bgmv_shrink(x, a, shrunk, idx, 1.0)
    assert shrunk[1].abs().sum() == 0 and shrunk[3].abs().sum() == 0 and shrunk[0].abs().sum() > 0
    out = torch.ones(4, OUT)
    cpu_lora.bgmv_expand(torch.randn(4, RANK), b, out, idx, True)
    assert torch.equal(out[1], torch.ones(OUT)) and torch.equal(out[3], torch.ones(OUT))


def test_canary_vllms_own_cpu_kernels_still_give_a_lora_to_tokens_without_one():
    """When this fails, vLLM's PyTorch kernels skip index -1 as its GPU kernels do: compare their
    speed with ours, and drop the plugin if ours no longer earns its place."""
    x, a, _, _ = _case([-1])
    out = torch.zeros(1, RANK)
    cpu_lora.UPSTREAM["bgmv_shrink"](x, a[:1], out, torch.tensor([-1]), 1.0)  # one LoRA slot, as --max-loras 1
    assert out.abs().sum() > 0, "vLLM now leaves a token without a LoRA alone"


def test_vllm_finds_the_plugin():
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins.get("aura_cpu_lora") == "service.engines.cpu_lora:register"
