"""lit-triune-plan: a dry run that says whether a config fits on a GPU before anything is downloaded.

    lit-triune-plan -c conf/orsta.yaml --gpu h100-80gb            # the recipe's own model and GPU count
    lit-triune-plan -c conf/orsta.yaml --arch 32B --trainer.devices 8 --prompt_len 1100

It reads the config exactly as `lit_triune/main.py fit` does (same parser, interpolation and overrides)
but instantiates nothing: the policy is built on the meta device from its config.json (the checkpoint's
own, or the public one kept in lit_triune/models/real_configs/), the strategy's FSDP wrapping and
activation checkpointing are applied to the arithmetic (lit_triune/models/memory_plan.py), and the
per-GPU plan is printed. Exit status 1 (and a warning) when the run would not fit. docs/gpu.md.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from lit_triune.main import TriuneCLI, register_resolvers
from lit_triune.models import memory_plan as mp


class _ConfigOnly(TriuneCLI):
    """The fit parser and its config handling, with the plan's own options; builds no object."""

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        super().add_arguments_to_parser(parser)
        parser.add_argument("--gpu", default="h100-80gb", choices=sorted(mp.CARDS), help="card to plan for")
        parser.add_argument("--arch", default=None, help="3B / 7B / 32B (default: from model.model_path)")
        parser.add_argument("--prompt_len", type=int, default=None,
                            help="prompt tokens (default: the vLLM engine's max_model_len - model.max_new_tokens)")
        parser.add_argument("--response_len", type=int, default=None, help="default: model.max_new_tokens")
        parser.add_argument("--gpu_memory_utilization", type=float, default=None,
                            help="what-if for the vLLM engine's share (default: the config's); set the same value "
                                 "in your config to run with it")

    def instantiate_classes(self) -> None:  # the plan reads the config; nothing is built
        pass


@dataclass
class Setup:
    """What the plan needs from a parsed config."""

    arch_source: str
    world: int
    fsdp_wrap: tuple[type, ...] | None
    checkpointing: bool
    precision: str
    param_bytes: int
    rows_per_gpu: int
    micro_batch: int
    group: int
    prompt_len: int
    response_len: int
    shared_prefix: bool
    vllm_fraction: float
    sleep: bool
    notes: list[str]
    fsdp_version: int = 1  # 1: FSDPStrategy (FullyShardedDataParallel), 2: FSDP2Strategy (fully_shard)
    reduce_bytes: int = 2  # FSDP gradient reduce dtype (FSDP1 under bf16-mixed: bf16; FSDP2: its reduce_dtype)


def _engine(cfg: Any) -> Any | None:
    for cb in cfg.trainer.callbacks or []:
        engine = getattr(getattr(cb, "init_args", None), "engine", None)
        if engine is not None and str(getattr(engine, "class_path", "")).endswith("VLLMEngine"):
            return engine.init_args
    return None


@dataclass
class FSDP2:
    """What the plan reads from an FSDP2Strategy block (lit_triune/models/fsdp2.py)."""

    param_dtype: str | None
    reduce_dtype: str | None


def _fsdp2(cfg: Any) -> FSDP2 | None:
    strategy = cfg.trainer.strategy
    if not str(getattr(strategy, "class_path", strategy)).endswith("FSDP2Strategy"):
        return None
    args = strategy.init_args
    return FSDP2(getattr(args, "param_dtype", None), getattr(args, "reduce_dtype", None))


def _strategy(cfg: Any, notes: list[str]) -> tuple[tuple[type, ...] | None, set[type]]:
    strategy = cfg.trainer.strategy
    path = getattr(strategy, "class_path", str(strategy))
    if _fsdp2(cfg) is not None:
        from lit_triune.models.fsdp2 import import_class

        args = strategy.init_args
        wrap = tuple(import_class(c) for c in getattr(args, "wrap_classes", None) or ())
        if not wrap:
            notes.append("no wrap_classes: the whole policy is one FSDP unit")
        if getattr(args, "reshard_after_forward", True) is False:
            notes.append("reshard_after_forward false is planned as true (ZeRO-3): gathered blocks are not kept")
        return wrap, {import_class(c) for c in getattr(args, "activation_checkpointing", None) or ()}
    if not str(path).endswith("FSDPStrategy"):
        return None, set()
    args = strategy.init_args
    if str(getattr(args, "sharding_strategy", "FULL_SHARD")).split(".")[-1] not in ("FULL_SHARD", "1"):
        notes.append(f"sharding_strategy {args.sharding_strategy} is planned as FULL_SHARD")
    if getattr(args, "cpu_offload", False):
        notes.append("cpu_offload is not modelled: the plan keeps parameters on the GPU")
    wrap = tuple(getattr(args, "auto_wrap_policy", None) or ())
    if not wrap:
        notes.append("no auto_wrap_policy: the whole policy is one FSDP unit")
    return wrap, set(getattr(args, "activation_checkpointing_policy", None) or ())


def read_setup(cfg: Any) -> tuple[Any, Setup]:
    notes: list[str] = []
    model = cfg.model
    config, source = mp.load_config(model.model_path, cfg.arch)
    wrap, ckpt_classes = _strategy(cfg, notes)
    layer_cls_name = "Qwen2_5_VLDecoderLayer"
    checkpointing = any(c.__name__ == layer_cls_name for c in ckpt_classes) or bool(model.gradient_checkpointing)
    devices = cfg.trainer.devices
    world = (int(devices) if str(devices).isdigit() else 1) * int(cfg.trainer.num_nodes or 1)
    precision = str(cfg.trainer.precision)
    fsdp2 = _fsdp2(cfg)
    if fsdp2 is not None and str(fsdp2.param_dtype).removeprefix("torch.") in ("bfloat16", "bf16"):
        precision = "fsdp-bf16"  # FSDP2's MixedPrecisionPolicy: bf16 gathered parameters and compute
    elif fsdp2 is not None and precision in ("bf16-mixed", "bf16"):
        precision = "autocast-bf16"  # no param_dtype: fp32 units under Lightning's autocast
    elif precision in ("bf16-mixed", "bf16"):
        precision = "fsdp-bf16" if wrap is not None else "autocast-bf16"
    elif precision in ("32-true", "32"):
        precision = "fp32"
    elif precision != "bf16-true":
        raise ValueError(f"trainer.precision {precision!r} is not planned; supported: bf16-mixed, bf16-true, 32-true")
    else:
        precision = "bf16"
    param_bytes = 2 if model.dtype in ("bfloat16", "bf16") or precision == "bf16" else 4
    engine = _engine(cfg)
    response = cfg.response_len or model.max_new_tokens
    prompt = cfg.prompt_len
    if prompt is None:
        if engine is None:
            raise ValueError("no vLLM engine in the config to take the prompt bound from: pass --prompt_len")
        prompt = engine.max_model_len - model.max_new_tokens
    rows = cfg.data.batch_size * model.group_size
    micro = min(model.micro_batch_size or rows, rows)
    reduce = str(fsdp2.reduce_dtype or fsdp2.param_dtype).removeprefix("torch.") if fsdp2 is not None else None
    reduce_bytes = 4 if reduce in ("float32", "fp32", "None") else 2
    return config, Setup(source, world, wrap, checkpointing, precision, param_bytes, rows, micro, model.group_size,
                         prompt, response, bool(model.shared_prefix_update),
                         cfg.gpu_memory_utilization if cfg.gpu_memory_utilization is not None else
                         float(engine.gpu_memory_utilization) if engine is not None else 0.0,
                         bool(engine.enable_sleep_mode) if engine is not None else False, notes,
                         fsdp_version=2 if fsdp2 is not None else 1, reduce_bytes=reduce_bytes)


@dataclass
class Plan:
    lines: list[str]
    fits: bool


def _g(n: float) -> str:
    return f"{n / mp.GiB:8.2f}"


def _row(label: str, n: float, indent: int = 2) -> str:
    return f"{' ' * indent}{label:<{54 - indent}}{_g(n)}"


def make_plan(config: Any, st: Setup, card: str) -> Plan:
    model = mp.meta_policy(config)
    frozen = {id(p) for p in model.model.visual.parameters()}  # model.freeze=vision (checked by the caller)
    sb = mp.state_bytes(model, frozen, fsdp_wrap=st.fsdp_wrap, world=st.world, param_bytes=st.param_bytes,
                        # FSDP2: units gathered in param_dtype (the residual dtype); FSDP1 as before (bf16-mixed)
                        mixed_bytes=mp.PRECISIONS[st.precision].resid if st.fsdp_version == 2 else 2,
                        fsdp_version=st.fsdp_version, reduce_bytes=st.reduce_bytes)
    shape = mp.Shape.of(config)
    prec = mp.PRECISIONS[st.precision]
    total_params = sum(p.numel() for p in model.parameters())
    n_frozen = sum(p.numel() for p in model.parameters() if id(p) in frozen)
    capacity = mp.CARDS[card]
    vllm = st.vllm_fraction * capacity

    def activations(rows: int, checkpointing: bool) -> mp.Activations:
        return mp.micro_batch_activations(shape, prec, rows=rows, prompts=mp.prompts_in_micro_batch(rows, st.group),
                                          prompt_len=st.prompt_len, response_len=st.response_len,
                                          shared_prefix=st.shared_prefix, checkpointing=checkpointing)

    # FSDP1 keeps the root unsharded from forward to the end of backward (with its unsharded gradient, the LM
    # head's being the first computed); two other units are gathered at a time, one unsharded gradient
    fsdp_work = 2 * sb.root_gathered + 2 * sb.unit_gathered + sb.unit_grad if st.fsdp_wrap is not None else 0
    autocast_cache = (mp.autocast_weight_copies(model, frozen, st.checkpointing)
                      if st.precision == "autocast-bf16" else 0)
    persistent = sb.params + sb.grads + sb.optimizer
    update_vllm = 0.0 if st.sleep else vllm

    def update_total(rows: int) -> float:
        a = activations(rows, st.checkpointing)
        return persistent + fsdp_work + autocast_cache + a.saved + a.peak_extra + mp.RUNTIME_RESERVE + update_vllm

    # weight sync after each step: FSDP1 summon_full_params gathers the whole policy in fp32 (grads are freed)
    # (on one GPU FSDP1 runs NO_SHARD: the fp32 parameters are already whole, nothing is gathered); FSDP2
    # unshards every unit into its all-gather buffer, in param_dtype (bf16 under conf/orsta.yaml)
    if st.fsdp_wrap is not None and st.fsdp_version == 2:
        gathered = sb.sync_gathered
    else:
        gathered = sb.full_fp32 if st.fsdp_wrap is not None and st.world > 1 else 0
    sync = sb.params + sb.optimizer + gathered + mp.RUNTIME_RESERVE + vllm
    act = activations(st.micro_batch, st.checkpointing)
    other = activations(st.micro_batch, not st.checkpointing)
    wrap_names = ", ".join(sorted(c.__name__ for c in st.fsdp_wrap)) if st.fsdp_wrap else ""
    lp, t = st.prompt_len, st.response_len
    out = [
        f"policy     {st.arch_source}: {total_params / 1e9:.2f} B parameters, {n_frozen / 1e9:.2f} B frozen (vision "
        f"tower), {(total_params - n_frozen) / 1e9:.2f} B trained",
        (f"strategy   FSDP{'2 (fully_shard)' if st.fsdp_version == 2 else ''} FULL_SHARD over {st.world} GPUs, "
         f"units: root + {wrap_names}; "
         if st.fsdp_wrap is not None else f"strategy   one full replica per GPU ({st.world} GPUs); ")
        + f"activation checkpointing {'on' if st.checkpointing else 'off'}; precision {st.precision}",
        f"batch      {st.rows_per_gpu} rows per GPU, micro-batch {st.micro_batch} rows "
        f"({mp.prompts_in_micro_batch(st.micro_batch, st.group)} prompts, group {st.group}); prompt {lp} + response "
        f"{t} tokens, every row at full length; shared-prefix update {'on' if st.shared_prefix else 'off'}",
        "",
        f"{'per GPU, update phase':<54}     GiB",
        _row(f"parameters ({'fp32' if st.param_bytes == 4 else 'bf16'}{' shard' if st.fsdp_wrap else ''})", sb.params),
        _row("gradients" + ("" if not st.fsdp_wrap else " (shards of trainable params)" if st.fsdp_version == 2
                            else " (shards of units with trainable params)"), sb.grads),
        _row("AdamW exp_avg + exp_avg_sq", sb.optimizer),
    ]
    if st.fsdp_wrap is not None:
        out.append(_row("FSDP unsharded: root + its grad, 2 units + 1 grad", fsdp_work))
    if autocast_cache:
        out.append(_row("autocast's bf16 weight copies", autocast_cache))
    out += [
        _row(f"activations kept for backward, {st.micro_batch} rows, "
             f"{'with' if st.checkpointing else 'no'} checkpointing", act.saved),
    ]
    for name, value in act.terms.items():
        if value >= 0.005 * mp.GiB:
            out.append(_row(name, value, indent=6))
    out += [
        _row("transient (logits backward / layer recompute)", act.peak_extra),
        _row("runtime reserve (CUDA context, NCCL; assumed)", mp.RUNTIME_RESERVE),
        _row(f"vLLM engine ({'asleep' if st.sleep else f'gpu_memory_utilization {st.vllm_fraction:.2f}'})",
             update_vllm),
    ]
    need = update_total(st.micro_batch)
    out += [
        _row("total", need),
        _row(f"card {card}", capacity),
        _row("headroom", capacity - need),
        "",
        f"the same micro-batch {'without' if st.checkpointing else 'with'} checkpointing keeps {_g(other.saved).strip()} "
        f"GiB of activations; shared-prompt KV copies alone (checkpointed): {_g(act.kv_copies or other.kv_copies).strip()} "
        f"GiB = {shape.layers} layers x 2 x {shape.kv_heads} kv heads x {shape.head_dim} x {lp} tokens x "
        f"{prec.b} B x {st.micro_batch} rows",
        "weight sync after each step: " + (("every unit unsharded in param_dtype, " if st.fsdp_version == 2 else
                                            "summon_full_params gathers the policy in fp32, ") if gathered else "")
        + f"total {_g(sync).strip()} GiB of {_g(capacity).strip()}",
        f"vLLM's share {_g(vllm).strip()} GiB holds its bf16 weights ({_g(2 * total_params).strip()} GiB) and its KV cache "
        f"(the rest, {_g(vllm - 2 * total_params).strip()} GiB)" if vllm else "no colocated vLLM engine",
    ]
    fits_update = need <= capacity
    fits_sync = sync <= capacity
    fits = fits_update and fits_sync
    micro = st.micro_batch
    if not fits_update:
        best = next((m for m in range(st.micro_batch - 1, 0, -1) if update_total(m) <= capacity), None)
        out.append(f"WARNING: the update does not fit on {card} ({_g(need - capacity).strip()} GiB short); "
                   + (f"micro_batch_size {best} would fit (headroom {_g(capacity - update_total(best)).strip()} GiB): "
                      f"--model.micro_batch_size={best}" if best else "no micro-batch fits at this vLLM share"))
        micro = best or 1
    if not fits_sync:
        out.append(f"WARNING: the weight sync does not fit on {card} ({_g(sync - capacity).strip()} GiB short)")
    if not fits:  # the vLLM share at which both phases fit, at the suggested micro-batch
        room = min(capacity - (update_total(micro) - update_vllm), capacity - (sync - vllm))
        out.append(f"with micro_batch_size {micro}, both phases fit if gpu_memory_utilization <= "
                   f"{max(room, 0) / capacity:.2f} ({_g(max(room, 0)).strip()} GiB for vLLM's weights and KV cache)"
                   if room > 0 else f"with micro_batch_size {micro} the training side alone does not fit: "
                   "shorten prompt/response, enable checkpointing or add GPUs")
    for note in st.notes:
        out.append(f"note: {note}")
    if fits:
        out.append(f"fits on {card}: headroom {_g(capacity - need).strip()} GiB in the update, "
                   f"{_g(capacity - sync).strip()} GiB at the weight sync")
    return Plan(out, fits)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    register_resolvers()
    from jsonargparse import set_parsing_settings

    from lit_triune.data import TriuneDataModule
    from lit_triune.rl.module import TriuneModule

    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    cli = _ConfigOnly(TriuneModule, TriuneDataModule, args=argv, run=False, auto_configure_optimizers=False,
                      parser_kwargs={"parser_mode": "omegaconf+"}, seed_everything_default=False)
    cfg = cli.config
    if cfg.model.freeze != "vision":
        raise SystemExit(f"lit-triune-plan plans model.freeze=vision (the recipe); got {cfg.model.freeze!r}")
    config, setup = read_setup(cfg)
    plan = make_plan(config, setup, cfg.gpu)
    print("\n".join(plan.lines))
    return 0 if plan.fits else 1


if __name__ == "__main__":
    sys.exit(main())
