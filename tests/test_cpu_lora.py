"""The CPU multi-LoRA kernels this package gives vLLM (service/engines/cpu_lora.py): vLLM's results
where vLLM is right, nothing for a token without a LoRA, and a canary for when vLLM fixes its own."""

from __future__ import annotations

import types
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


def _linear_case(indices: list[int], slices: tuple[int, ...], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(indices), WIDTH, generator=g).bfloat16()
    a = tuple(torch.randn(SLOTS, 1, RANK, WIDTH, generator=g).bfloat16() for _ in slices)
    b = tuple(torch.randn(SLOTS, 1, n, RANK, generator=g).bfloat16() for n in slices)
    y = torch.randn(len(indices), sum(slices), generator=g).bfloat16()
    return x, a, b, y


def _expected_linear(x, a, b, y, indices, scale):
    """add_lora_linear's definition, token by token, in float32."""
    out = y.float()
    for t, slot in enumerate(indices):
        if slot < 0:
            continue
        offset = 0
        for lora_a, lora_b in zip(a, b, strict=True):
            n = lora_b.shape[2]
            out[t, offset : offset + n] += x[t].float() @ lora_a[slot, 0].float().T * scale @ lora_b[slot, 0].float().T
            offset += n
    return out


@pytest.mark.parametrize("tokens", [5, cpu_lora.BLOCK_DIAGONAL_MAX_TOKENS + 7])  # block-diagonal, then slice by slice
@pytest.mark.parametrize("pattern", [[0], [2, -1, 0, 2], [-1]])
def test_add_lora_linear_applies_each_tokens_lora_to_every_slice(tokens, pattern):
    indices = (pattern * tokens)[:tokens]
    slices = (12, 4, 4)  # as q, k, v
    x, a, b, y = _linear_case(indices, slices)
    expected = _expected_linear(x, a, b, y, indices, 0.5)
    wrapper = types.SimpleNamespace(token_lora_indices=torch.tensor(indices))
    cpu_lora.STEP.new_step()
    cpu_lora.FUSED.clear()
    _assert_bf16_sum(lambda: cpu_lora.add_lora_linear(wrapper, y, x, a, b, 0.5, slices), y, expected)


def _assert_bf16_sum(add, y, expected):
    """y (bf16) += a float32 delta, cast to bf16 first: within a bf16 rounding of y and of the delta."""
    bound = 2**-8 * (expected - y.float()).abs().max()
    add()
    torch.testing.assert_close(y.float(), expected, rtol=2**-8, atol=bound)


def test_the_fused_weights_are_rebuilt_after_an_adapter_is_written():
    from vllm.lora.model_manager import LoRAModelManager

    cpu_lora.register()
    slices = (8,)
    x, a, b, y = _linear_case([1, 1], slices)
    wrapper = types.SimpleNamespace(token_lora_indices=torch.tensor([1, 1]))
    cpu_lora.STEP.new_step()
    cpu_lora.add_lora_linear(wrapper, y.clone(), x, a, b, 1.0, slices)
    assert cpu_lora.FUSED.entries
    # vLLM calls activate_adapter every step for each adapter in use; it writes weights only for a new one.
    manager = types.SimpleNamespace(_active_adapters={7: None}, lora_index_to_id=[None])
    assert LoRAModelManager.activate_adapter(manager, 7) is False and cpu_lora.FUSED.entries
    manager = types.SimpleNamespace(_active_adapters={}, lora_index_to_id=[None], modules={},
                                    _registered_adapters={7: types.SimpleNamespace(id=7)})
    assert LoRAModelManager.activate_adapter(manager, 7) is True and not cpu_lora.FUSED.entries
    a[0][1].mul_(2)  # (what set_lora does to the slot, in place)
    out = y.clone()
    _assert_bf16_sum(lambda: cpu_lora.add_lora_linear(wrapper, out, x, a, b, 1.0, slices), out,
                     _expected_linear(x, a, b, y, [1, 1], 1.0))
