"""Per-GPU memory arithmetic for a GRPO update of a Qwen2.5-VL policy, from its config alone.

The policy is built on the meta device (no memory, no download); FSDP1's flat-parameter layout
(`use_orig_params=True`: each parameter aligned to 16 bytes, each flat parameter padded to a multiple of
the world size) or FSDP2's per-parameter dim-0 shards are rebuilt from the wrapped block classes, and the activations one micro-batch keeps for its
backward are counted tensor by tensor as transformers' Qwen2.5-VL decoder layer (sdpa attention) and
`lit_triune/rl/logprobs.py` save them. `lit_triune/plan.py` turns this into the printed plan; tests/models/
test_memory_plan.py checks it against allocations measured on CPU. Method and limits: docs/gpu.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

REAL_CONFIGS = Path(__file__).parent / "real_configs"
GiB = 1024**3
# Total memory as nvidia-smi reports it (MiB), which is what vLLM's gpu_memory_utilization is a fraction of.
CARDS: dict[str, int] = {
    "h100-80gb": 81559 * 2**20,
    "a100-80gb": 81920 * 2**20,
    "a100-40gb": 40960 * 2**20,
    "l40s-48gb": 46068 * 2**20,
}
# CUDA context, NCCL buffers and cuBLAS workspaces per process: an assumption, not measured here.
RUNTIME_RESERVE = 2 * GiB


def real_config_names() -> list[str]:
    return sorted(p.stem for p in REAL_CONFIGS.glob("*.json"))


def load_config(model_path: str, arch: str | None = None) -> tuple[Any, str]:
    """The Qwen2.5-VL config a plan is made for, and where it came from: `arch` (a name under
    real_configs/ or a size such as "7B"), else `model_path`'s own config.json if it exists, else the
    real config whose size appears in the path's name (`/ckpt/Qwen2.5-VL-7B-Instruct` -> 7B). A Hub id
    (`Qwen/Qwen2.5-VL-7B-Instruct`) reads the config.json in the Hugging Face cache when it is there."""
    from transformers import Qwen2_5_VLConfig

    names = real_config_names()
    if arch is None:
        local = Path(model_path).expanduser() / "config.json"
        if not local.is_file():  # a Hub id: its config.json from the Hugging Face cache, if it is there
            from huggingface_hub import try_to_load_from_cache
            from huggingface_hub.utils import HFValidationError

            try:
                cached = try_to_load_from_cache(model_path, "config.json")
            except HFValidationError:  # not a Hub id either
                cached = None
            local = Path(cached) if isinstance(cached, str) else local
        if local.is_file():
            return Qwen2_5_VLConfig.from_json_file(str(local)), str(local)
        found = re.search(r"(\d+)B", Path(model_path).name, flags=re.IGNORECASE)
        arch = found.group(1) + "B" if found else None
    if arch is None:
        raise ValueError(f"cannot tell the architecture from model_path {model_path!r}: no config.json there and "
                         f"no size in its name; pass --arch, one of {names} (or 3B / 7B / 32B)")
    match = [n for n in names if n == arch or f"-{arch.upper()}-" in n]
    if len(match) != 1:
        raise ValueError(f"unknown --arch {arch!r}; available: {names} (or 3B / 7B / 32B)")
    path = REAL_CONFIGS / f"{match[0]}.json"
    return Qwen2_5_VLConfig.from_json_file(str(path)), str(path.relative_to(REAL_CONFIGS.parent.parent.parent))


def meta_policy(config: Any) -> nn.Module:
    """The policy at its real size on the meta device: shapes and dtypes, no storage."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        return Qwen2_5_VLForConditionalGeneration(config)


# ----- parameters, gradients, optimizer state --------------------------------------------------------
@dataclass
class Unit:
    """One FSDP unit's own parameters (those not inside a nested unit), in registration order."""

    name: str
    numels: list[int]
    trainable: list[bool]
    rows: list[int] = field(default_factory=list)  # each parameter's dim 0 (FSDP2 shards along it)

    def dim0_layout(self, world: int) -> tuple[list[int], list[list[int]]]:
        """FSDP2 (`fully_shard`): each parameter is chunked along dim 0 into `world` pieces of
        ceil(rows / world) rows (the last ones shorter or empty) and stored padded to that chunk on every
        rank (`FSDPParam._init_sharded_param`). Per parameter: the padded shard's elements, and each
        rank's real (unpadded) elements (what `zeros_like` of the DTensor, e.g. AdamW's state, holds)."""
        padded, local = [], []
        for n, rows in zip(self.numels, self.rows, strict=True):
            rows = max(rows, 1)
            per_row, chunk = n // rows, -(-rows // world)
            padded.append(chunk * per_row)
            local.append([max(0, min(chunk, rows - r * chunk)) * per_row for r in range(world)])
        return padded, local

    def flat_layout(self, world: int, align: int) -> tuple[list[int], int]:
        """Start offset of each parameter in the flat parameter, and its padded total (FSDP1,
        `_flat_param.FlatParamHandle._init_flat_param_and_metadata` with `use_orig_params=True`)."""
        starts, total = [], 0
        for n in self.numels:
            if align and total % align:
                total += align - total % align
            starts.append(total)
            total += n
        if align and total % world:
            total += world - total % world
        return starts, total


def fsdp_units(model: nn.Module, wrap_classes: tuple[type, ...], frozen: set[int]) -> list[Unit]:
    """Root unit first, then one unit per module of `wrap_classes` (outermost wins); `frozen` holds
    id()s of parameters without gradients. Tied parameters count once (where first seen)."""
    seen: set[int] = set()
    units: list[Unit] = []

    def collect(module: nn.Module, name: str) -> None:
        unit = Unit(name or "root", [], [])
        units.append(unit)

        def walk(mod: nn.Module, prefix: str) -> None:
            for p in mod.parameters(recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    unit.numels.append(p.numel())
                    unit.trainable.append(id(p) not in frozen)
                    unit.rows.append(p.shape[0] if p.dim() else 1)
            for child_name, child in mod.named_children():
                full = f"{prefix}.{child_name}" if prefix else child_name
                if isinstance(child, wrap_classes):
                    collect(child, full)
                else:
                    walk(child, full)

        walk(module, name)

    collect(model, "")
    return units


@dataclass
class StateBytes:
    params: int  # resident parameter storage (sharded fp32 under FSDP)
    grads: int  # gradient storage after backward
    optimizer: int  # AdamW exp_avg + exp_avg_sq (+ 4-byte step per parameter)
    trainable_local: int  # trainable elements this rank's optimizer owns
    root_gathered: int  # FSDP: root unit's parameters held unsharded in param_dtype through fwd+bwd
    unit_gathered: int  # FSDP: largest other unit unsharded in param_dtype (two live: current + prefetch)
    unit_grad: int  # FSDP: largest trainable unit's unsharded gradient in reduce_dtype
    full_fp32: int  # the whole model in fp32 (FSDP summon_full_params for the weight sync)
    sync_gathered: int = 0  # what the weight sync gathers: FSDP1 the fp32 model; FSDP2 every unit in param_dtype


def state_bytes(model: nn.Module, frozen: set[int], *, fsdp_wrap: tuple[type, ...] | None, world: int,
                param_bytes: int = 4, mixed_bytes: int = 2, fsdp_version: int = 1,
                reduce_bytes: int | None = None) -> StateBytes:  # param_bytes: master weights and AdamW states
    """Parameters, gradients and AdamW state per GPU. `fsdp_wrap` None: one replica per GPU (DDP/single),
    else FULL_SHARD over `world` ranks (the rank with the most trainable elements is reported), as
    FSDP1 with `use_orig_params=True` (`fsdp_version` 1: a unit with any trainable parameter gets a
    gradient for its whole flat shard, frozen parts included) or FSDP2 (`fully_shard`, per-parameter dim-0
    shards: only trainable parameters get a gradient shard). AdamW holds two states per trainable element.
    `mixed_bytes` / `reduce_bytes`: the units' param_dtype / reduce_dtype (reduce: `mixed_bytes` if None)."""
    params = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in params.values())
    n_trainable = sum(p.numel() for i, p in params.items() if i not in frozen)
    n_trainable_params = sum(1 for i in params if i not in frozen)
    reduce_bytes = mixed_bytes if reduce_bytes is None else reduce_bytes
    if fsdp_wrap is None:
        return StateBytes(total * param_bytes, n_trainable * param_bytes, 2 * param_bytes * n_trainable + 4 * n_trainable_params,
                          n_trainable, 0, 0, 0, total * 4, total * 4)
    if fsdp_version == 2:
        return _fsdp2_state_bytes(fsdp_units(model, fsdp_wrap, frozen), world, param_bytes, mixed_bytes,
                                  reduce_bytes, n_trainable_params, total)
    align = 16 // mixed_bytes  # aligned to 16 bytes of the forward/backward (param_dtype) copy
    units = fsdp_units(model, fsdp_wrap, frozen)
    shard_total = grad_total = 0
    local_trainable = [0] * world
    for u in units:
        starts, flat = u.flat_layout(world, align)
        shard = flat // world
        shard_total += shard
        if any(u.trainable):
            grad_total += shard
        for start, n, tr in zip(starts, u.numels, u.trainable, strict=True):
            if not tr:
                continue
            for r in range(world):  # overlap of [start, start + n) with rank r's [r*shard, (r+1)*shard)
                local_trainable[r] += max(0, min(start + n, (r + 1) * shard) - max(start, r * shard))
    root, others = units[0], units[1:]
    largest = max((sum(u.numels) for u in others), default=0)
    largest_trainable = max((sum(u.numels) for u in others if any(u.trainable)), default=0)
    trainable_local = max(local_trainable)
    return StateBytes(shard_total * param_bytes, grad_total * param_bytes,
                      2 * param_bytes * trainable_local + 4 * n_trainable_params, trainable_local,
                      sum(root.numels) * mixed_bytes, largest * mixed_bytes, largest_trainable * reduce_bytes,
                      total * 4, total * 4)


def _fsdp2_state_bytes(units: list[Unit], world: int, param_bytes: int, mixed_bytes: int, reduce_bytes: int,
                       n_trainable_params: int, total: int) -> StateBytes:
    """`state_bytes` for FSDP2: every rank stores each parameter's padded dim-0 chunk; gradients (after the
    reduce-scatter, in the master dtype) only for trainable parameters; AdamW state at the real local shape.
    A unit is gathered into one buffer of `world` x its padded shards (in param_dtype)."""
    shard_total = grad_total = 0
    local_trainable = [0] * world
    gathered: list[int] = []  # per unit: elements of the all-gather output
    gathered_trainable: list[int] = []
    for u in units:
        padded, local = u.dim0_layout(world)
        shard_total += sum(padded)
        gathered.append(world * sum(padded))
        gathered_trainable.append(world * sum(n for n, tr in zip(padded, u.trainable, strict=True) if tr))
        for n, per_rank, tr in zip(padded, local, u.trainable, strict=True):
            if tr:
                grad_total += n
                for r in range(world):
                    local_trainable[r] += per_rank[r]
    trainable_local = max(local_trainable)
    return StateBytes(shard_total * param_bytes, grad_total * param_bytes,
                      2 * param_bytes * trainable_local + 4 * n_trainable_params, trainable_local,
                      gathered[0] * mixed_bytes, max(gathered[1:], default=0) * mixed_bytes,
                      max(gathered_trainable[1:], default=0) * reduce_bytes, total * 4, sum(gathered) * mixed_bytes)


# ----- activations of one micro-batch ----------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @staticmethod
    def of(config: Any) -> Shape:
        t = config.text_config
        head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
        return Shape(t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_attention_heads,
                     t.num_key_value_heads, head_dim, t.vocab_size)


@dataclass(frozen=True)
class Precision:
    """b: bytes of matmul/attention operands; resid: bytes of the residual stream (fp32 under autocast
    with fp32 weights, bf16 under FSDP's bf16 param_dtype), which is also the dtype of the rotary cos/sin
    and so of the rotated keys the shared prefix records; RMSNorm always upcasts to fp32."""

    b: int
    resid: int


PRECISIONS = {
    "fsdp-bf16": Precision(2, 2),  # FSDP MixedPrecision(param_dtype=bf16): Lightning's bf16-mixed under FSDP
    "autocast-bf16": Precision(2, 4),  # fp32 weights under torch.autocast(bf16): bf16-mixed without FSDP
    "fp32": Precision(4, 4),
    "bf16": Precision(2, 2),  # bf16-true
}


def _norm(tokens: int, s: Shape, p: Precision) -> int:
    # fp32 upcast input (pow, mul), normalized in the residual dtype (weight mul), rsqrt [.., 1] fp32
    return tokens * (4 * s.hidden + p.resid * s.hidden + 4)


def _layer_saved(rows: int, q: int, ctx: int, s: Shape, p: Precision, masked: bool) -> int:
    """Bytes one decoder layer saves for backward: `rows` sequences of `q` new tokens attending to `ctx`
    keys. Two RMSNorms; the q/k/v and gate/up inputs (one tensor each); sdpa keeps q, out and an fp32
    log-sum-exp per head, and k/v over the whole context — repeated to every query head when a mask is
    present (transformers' `repeat_kv`; without a mask it passes `enable_gqa`) — plus the additive mask
    it builds from the boolean one; the SwiGLU keeps gate, silu(gate), up and their product."""
    tokens = rows * q
    per_token = 2 * p.b * s.hidden + 2 * p.b * s.heads * s.head_dim + 4 * s.heads + 4 * p.b * s.intermediate
    kv_heads = s.heads if masked else s.kv_heads
    kv = rows * 2 * kv_heads * s.head_dim * ctx * p.b
    mask = rows * q * ctx * p.b if masked else 0
    return 2 * _norm(tokens, s, p) + tokens * per_token + kv + mask


@dataclass
class Activations:
    saved: int  # held from the end of the forward until the backward reaches them
    peak_extra: int  # transient on top: one layer's recompute (checkpointing) or the logits' backward
    kv_copies: int  # of `saved`: the shared prompt's keys/values copied to each row (checkpointed case)
    terms: dict[str, int] = field(default_factory=dict)


def micro_batch_activations(s: Shape, p: Precision, *, rows: int, prompts: int, prompt_len: int,
                            response_len: int, shared_prefix: bool, checkpointing: bool,
                            masked: bool = True) -> Activations:
    """Activations of one micro-batch of `rows` completions of `prompts` distinct prompts, every row at
    the full lengths (the largest micro-batch a config allows). The shared-prefix path runs the prompts
    once ([prompts, Lp]) and the completions per row ([rows, T-1] attending to Lp + T-1 keys); the full
    path runs [rows, Lp + T]. With (non-reentrant) checkpointing a layer keeps only its input, and the
    shared prefix's recorded and per-row-copied keys/values (kept as the replay's arguments)."""
    lp, t = prompt_len, response_len
    if shared_prefix:
        passes = [(prompts, lp, lp), (rows, t - 1, lp + t - 1)]
    else:
        passes = [(rows, lp + t, lp + t)]
    terms: dict[str, int] = {}
    kv_copies = 0
    if checkpointing:
        terms["layer inputs"] = s.layers * sum(r * q * s.hidden * p.resid for r, q, _ in passes)
        terms["boolean masks"] = sum(r * q * c for r, q, c in passes) if masked else 0
        if shared_prefix:
            per_layer_kv = 2 * s.kv_heads * s.head_dim * lp * p.resid
            terms["recorded prompt KV"] = s.layers * prompts * per_layer_kv
            kv_copies = s.layers * rows * per_layer_kv
            terms["prompt KV copied per row"] = kv_copies
    else:
        terms["decoder layers"] = s.layers * sum(_layer_saved(r, q, c, s, p, masked) for r, q, c in passes)
    terms["rotary cos/sin"] = sum(2 * r * q * s.head_dim * p.resid for r, q, _ in passes)
    terms["final norm"] = sum(_norm(r * q, s, p) for r, q, _ in passes)
    terms["LM head input"] = rows * t * s.hidden * p.b
    terms["log-softmax (fp32)"] = rows * t * s.vocab * 4
    saved = sum(terms.values())
    logits_backward = rows * t * s.vocab * 8  # log-softmax backward: fp32 grad in and out, [rows, T, V] each
    recompute = max(_layer_saved(r, q, c, s, p, masked) for r, q, c in passes) if checkpointing else 0
    return Activations(saved, max(logits_backward, 2 * recompute), kv_copies, terms)


def autocast_weight_copies(model: nn.Module, frozen: set[int], checkpointing: bool) -> int:
    """bf16 copies of fp32 Linear weights that autocast makes in the forward and the backward keeps
    (trainable weights only; without checkpointing every decoder layer's, with it the LM head's alone,
    the layers' being remade during their recompute)."""
    head = model.get_output_embeddings()
    layers = model.model.language_model.layers
    weights = [head.weight] + ([] if checkpointing else
                               [m.weight for m in layers.modules() if isinstance(m, nn.Linear)])
    return sum(2 * w.numel() for w in weights if id(w) not in frozen)


def prompts_in_micro_batch(rows: int, group: int) -> int:
    """Distinct prompts among `rows` consecutive rows (groups of `group` rows each), worst alignment."""
    if rows % group == 0:
        return rows // group
    return min(rows, math.ceil(rows / group) + 1)
