"""conf/: every config parses, the paper recipe runs on CPU through vLLM, and each ablation does what it says.

- Every YAML under conf/ (ablations on top of the bases they apply to) passes `--print_config`, with all
  interpolations resolved to the recipe's numbers.
- conf/orsta.yaml's FSDP2 strategy block builds a real FSDP2Strategy (wrapped and checkpointed blocks, dtypes).
- The freeze ablations freeze what they claim (requires_grad after `configure_model`), on orsta and tiny.
- conf/orsta.yaml, swapped to CPU (tiny model, synthetic data, one process, vLLM-CPU engine args), runs 2 fit
  steps in a subprocess through the real VLLMEngine + RolloutCallback.
- conf/tiny.yaml and each ablation that applies to it run 2 fit steps in-process (1 warm-start + 1 RL).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_triune.main import cli_main

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
ORSTA, TINY = CONF / "orsta.yaml", CONF / "tiny.yaml"
ABLATIONS = CONF / "ablations"
ORSTA_ONLY = {"reasoning_only", "perception_only"}  # name orsta.yaml's task shard directories
TINY_ONLY = {"tiny_reasoning_only", "tiny_perception_only"}  # restrict tiny.yaml's data.synthetic
ORSTA_TASKS = {"math", "puzzle", "science", "chart", "detection", "grounding", "counting", "ocr"}

# conf/orsta.yaml on one CPU process: what the CPU test and the freeze test override on the command line.
ORSTA_ON_CPU = [
    "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.num_nodes=1", "--trainer.strategy=auto",
    "--trainer.precision=32-true", "--model.model_path=tiny",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch):
    """LightningCLI warns when given `args` while sys.argv holds pytest's own arguments."""
    monkeypatch.setattr(sys, "argv", ["lit-triune"])


def _ablation(name: str) -> Path:
    return ABLATIONS / f"{name}.yaml"


def _stacks() -> list[tuple[str, list[Path]]]:
    """(id, config files in order) for every base and every ablation on each base it applies to."""
    stacks = [("tiny", [TINY]), ("orsta", [ORSTA])]
    for path in sorted(ABLATIONS.glob("*.yaml")):
        bases = [TINY] if path.stem in TINY_ONLY else [ORSTA] if path.stem in ORSTA_ONLY else [ORSTA, TINY]
        stacks += [(f"{base.stem}+{path.stem}", [base, path]) for base in bases]
    stacks += [(f"{base.stem}+own_data", [base, CONF / "examples" / "own_data.yaml"]) for base in (TINY, ORSTA)]
    stacks.append(("orsta+rollout_server_2node", [ORSTA, CONF / "examples" / "rollout_server_2node.yaml"]))
    return stacks


STACKS = _stacks()


def _config_args(files: list[Path]) -> list[str]:
    return [arg for f in files for arg in ("-c", str(f))]


def _print_config(files: list[Path], *overrides: str, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args=[*_config_args(files), *overrides, "--print_config"], run=False)
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None), out
    assert "${" not in out, "an interpolation was left unresolved"
    return yaml.safe_load(out)


def _callback(config: dict, name: str) -> dict:
    (cb,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith(name)]
    return cb["init_args"]


def test_every_config_file_is_covered():
    listed = {f for _, files in STACKS for f in files}
    on_disk = set(CONF.rglob("*.yaml"))
    assert on_disk <= listed, f"configs without a --print_config case: {sorted(map(str, on_disk - listed))}"


# Expected values after the overlays, as (dotted key, value); "cb:<Name>.<arg>" reads a callback's init_args.
EXPECTED = {
    "orsta": [("trainer.max_steps", 135), ("model.warmup_steps", 6), ("cb:ModelCheckpoint.every_n_train_steps", 5),
              ("data.batch_size", 128), ("data.val_batch_size", 512), ("model.updates_per_rollout", 1),
              ("model.freeze", "vision"), ("model.loss.class_path", "lit_triune.rl.loss.DAPOLoss"),
              ("model.loss.init_args.kl_coef", 0.0), ("model.loss.init_args.dual_clip", 3.0),
              ("trainer.precision", "bf16-mixed"), ("model.dtype", "float32"), ("model.group_size", 8)],
    "orsta+off_policy": [("model.updates_per_rollout", 4), ("trainer.max_steps", 540), ("model.warmup_steps", 24),
                         ("cb:ModelCheckpoint.every_n_train_steps", 20), ("data.batch_size", 128)],
    "tiny+off_policy": [("model.updates_per_rollout", 4), ("trainer.max_steps", 460)],
    "orsta+freeze_vision": [("model.freeze", "vision")],
    "orsta+freeze_language": [("model.freeze", "language")],
    "orsta+freeze_none": [("model.freeze", "none")],
    "tiny+freeze_vision": [("model.freeze", "vision")],
    "tiny+freeze_language": [("model.freeze", "language")],
    "tiny+freeze_none": [("model.freeze", "none")],
}  # fmt: skip


def _get(config: dict, key: str):
    if key.startswith("cb:"):
        name, arg = key[3:].split(".")
        return _callback(config, name)[arg]
    for part in key.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("files", [files for _, files in STACKS], ids=[name for name, _ in STACKS])
def test_print_config(files, capsys, request):
    config = _print_config(files, capsys=capsys)
    name = request.node.callspec.id
    for key, value in EXPECTED.get(name, []):
        assert _get(config, key) == value, (name, key)
    if name == "orsta":
        engine = _callback(config, "RolloutCallback")["engine"]
        assert engine["class_path"] == "lit_triune.rollout.VLLMEngine"
        assert engine["init_args"]["max_model_len"] == 8192 + 2048
        assert engine["init_args"]["gpu_memory_utilization"] == 0.7
        assert config["trainer"]["strategy"]["class_path"] == "lit_triune.models.fsdp2.FSDP2Strategy"
        assert set(config["data"]["train"]) == set(config["data"]["val"]) == ORSTA_TASKS
    if name == "orsta+rollout_server_2node":  # orsta.yaml's callbacks, with the engine in a rollout server
        base = _print_config([ORSTA], capsys=capsys)
        assert [c["class_path"] for c in config["trainer"]["callbacks"]] == [
            c["class_path"] for c in base["trainer"]["callbacks"]]
        engine = _callback(config, "RolloutCallback")["engine"]
        assert engine["class_path"] == "lit_triune.rollout.RemoteEngine"
        assert engine["init_args"]["engine_kwargs"]["max_model_len"] == 8192 + 2048
        assert engine["init_args"]["launch"] is False and engine["init_args"]["weights_backend"] == "nccl"
        assert _callback(config, "ModelCheckpoint")["every_n_train_steps"] == 5
    if name in ("orsta+reasoning_only", "orsta+perception_only"):
        reasoning = {"math", "puzzle", "science", "chart"}
        assert set(config["data"]["train"]) == (reasoning if "reasoning" in name else ORSTA_TASKS - reasoning)
        assert set(config["data"]["val"]) == ORSTA_TASKS  # the variants are compared on the same sources
    if name.endswith("+own_data"):  # the template replaces the base's data, whichever base
        assert config["data"]["train"] == {"my_data": "data/my_data/train"}
        assert config["data"]["val"] == {"my_data": "data/my_data/val"}
        assert config["data"]["synthetic"] is None and config["data"]["val_synthetic"] is None
        assert config["model"]["warm_start_steps"] == 0 and config["model"]["model_path"] == "Qwen/Qwen2.5-VL-3B-Instruct"
        assert _callback(config, "SourceMetrics").get("sources") is None  # taken from the data module
    if name.startswith("tiny+tiny_"):
        want = {"chart", "math"} if "reasoning" in name else {"grounding", "detection", "counting", "ocr"}
        assert set(config["data"]["synthetic"]) == want
        assert set(config["data"]["val_synthetic"]) == {"grounding", "detection", "counting", "ocr", "chart", "math"}


def test_orsta_interpolation_follows_command_line(capsys):
    """The per-rank batch follows command-line overrides of the device count (which arrives as a string)."""
    overrides = ["--trainer.num_nodes=2", "--trainer.devices=4", "--model.max_new_tokens=1024"]
    config = _print_config([ORSTA], *overrides, capsys=capsys)
    assert config["data"]["batch_size"] == 1024 // 8
    assert config["data"]["val_batch_size"] == 4096 // 8
    assert _callback(config, "RolloutCallback")["engine"]["init_args"]["max_model_len"] == 8192 + 1024


def test_orsta_fsdp_strategy_builds():
    """The strategy block becomes an FSDP2Strategy (Lightning's ModelParallelStrategy) with both Qwen2.5-VL
    block types wrapped and checkpointed, bf16 compute with fp32 gradient reduction, sharded checkpoints."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import ModelParallelStrategy, Strategy
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VLDecoderLayer,
        Qwen2_5_VLVisionBlock,
    )

    from lit_triune.models.fsdp2 import FSDP2Strategy

    block = yaml.safe_load(ORSTA.read_text())["trainer"]["strategy"]
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--strategy", type=Strategy)
    strategy = parser.instantiate_classes(parser.parse_object({"strategy": block})).strategy
    assert isinstance(strategy, FSDP2Strategy) and isinstance(strategy, ModelParallelStrategy)
    blocks = {Qwen2_5_VLDecoderLayer, Qwen2_5_VLVisionBlock}
    assert set(strategy.wrap_classes) == blocks and set(strategy.checkpoint_classes) == blocks
    assert (strategy.param_dtype, strategy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert strategy.reshard_after_forward is True
    assert strategy._save_distributed_checkpoint is True  # read in the test only


def _parameter_split(policy: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    inner = policy.model
    return {"vision": list(inner.visual.parameters()),
            "language": [*inner.language_model.parameters(), *policy.lm_head.parameters()]}  # fmt: skip


def _check_frozen(module, freeze: str) -> None:
    parts = _parameter_split(module.policy)
    assert parts["vision"] and parts["language"]
    for name, params in parts.items():
        frozen = freeze == name
        assert all(p.requires_grad != frozen for p in params), f"freeze={freeze}: {name} requires_grad wrong"
    covered = {id(p) for params in parts.values() for p in params}
    assert covered == {id(p) for p in module.policy.parameters()}  # no third part escapes the check
    trainable = {id(p) for p in module.policy.parameters() if p.requires_grad}
    assert {id(p) for p in module._trainable_under(freeze)} == trainable  # what the RL optimizer will own


@pytest.mark.parametrize("base", ["orsta", "tiny"])
@pytest.mark.parametrize("freeze", ["vision", "language", "none"])
def test_freeze_ablation_freezes_what_it_claims(base, freeze, tmp_path):
    files = [ORSTA if base == "orsta" else TINY, _ablation(f"freeze_{freeze}")]
    overrides = ORSTA_ON_CPU if base == "orsta" else []
    cli = cli_main(args=[*_config_args(files), *overrides, "--model.warm_start_steps=0",
                         f"--trainer.default_root_dir={tmp_path}"], run=False)  # fmt: skip
    assert cli.model.hparams.freeze == freeze
    cli.model.configure_model()
    _check_frozen(cli.model, freeze)


def _scalars(log_dir: Path) -> dict[str, list[float]]:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _only_version(run_dir: Path) -> Path:
    (log_dir,) = [p for p in run_dir.rglob("version_*") if p.is_dir()]
    return log_dir


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.vllm
def test_orsta_runs_on_cpu_with_vllm(tmp_path):
    """conf/orsta.yaml for 2 steps on 2 CPU processes: its FSDP2 strategy block as written (wrapped and
    activation-checkpointed blocks, bf16 param_dtype with fp32 reduction, sharded checkpoints) but over gloo,
    bf16-mixed, a vLLM engine per rank (external_launcher), started with `main.py fit` as the README starts
    it; tiny model and synthetic data.

    Swapped in a copy of the file (a list element cannot be overridden on the command line): the engine's GPU
    arguments. Everything else is a command-line override, so the saved config shows what was changed."""
    config = yaml.safe_load(ORSTA.read_text())
    (rollout_cb,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("RolloutCallback")]
    engine = rollout_cb["init_args"]["engine"]["init_args"]
    # CPU: no CUDA graphs (enforce_eager None = on for CPU), a prompt budget the tiny model allows
    engine.update(max_model_len=1024, enforce_eager=None, max_num_seqs=64, kv_cache_memory_bytes=64 << 20)
    cpu_conf = tmp_path / "orsta_cpu.yaml"
    cpu_conf.write_text(yaml.safe_dump(config, sort_keys=False))
    run_dir = tmp_path / "run"
    args = [
        sys.executable, str(ROOT / "lit_triune" / "main.py"), "fit", "-c", str(cpu_conf),
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.num_nodes=1", "--model.model_path=tiny",
        "--trainer.strategy.init_args.process_group_backend=gloo",
        "--trainer.max_steps=2", f"--trainer.default_root_dir={run_dir}",
        f"--trainer.logger.init_args.save_dir={run_dir}", "--trainer.enable_progress_bar=false",
        "--model.max_new_tokens=8", "--model.reward_workers=0",
        "--data.train=null", "--data.val=null", "--data.synthetic={counting: 8, grounding: 8}",
        "--data.val_synthetic={counting: 4}", "--data.batch_size=2", "--data.val_batch_size=4",
        "--data.num_workers=0", "--data.min_pixels=null", "--data.max_pixels=null",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "callbacks"), str(ROOT / "tests" / "support")]))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    log_dir = _only_version(run_dir)
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["trainer"]["strategy"]["class_path"] == "lit_triune.models.fsdp2.FSDP2Strategy"
    assert saved["trainer"]["strategy"]["init_args"]["process_group_backend"] == "gloo"
    assert saved["trainer"]["max_steps"] == 2
    assert saved["trainer"]["precision"] == "bf16-mixed"  # the recipe's
    assert saved["model"]["model_path"] == "tiny" and saved["model"]["max_new_tokens"] == 8
    assert saved["model"]["warmup_steps"] == 6 and saved["model"]["loss"]["init_args"]["dual_clip"] == 3.0  # recipe values kept
    assert _callback(saved, "ModelCheckpoint")["every_n_train_steps"] == 5
    assert _callback(saved, "RolloutCallback")["engine"]["init_args"]["max_model_len"] == 1024
    assert _callback(saved, "RolloutCallback")["engine"]["class_path"] == "lit_triune.rollout.VLLMEngine"
    assert (log_dir / "checkpoints" / "last.ckpt").is_dir()  # sharded: a directory of per-rank shards

    scalars = _scalars(log_dir)
    assert scalars["time/weight_sync"], "RolloutCallback never pushed weights to the engine"
    assert scalars["train/iou_threshold"][0] == pytest.approx(0.85)  # DynamicIoUThreshold's first stage
    assert "train/reward/all" in scalars and "train/reward_mean" in scalars  # SourceMetrics and the module
    assert all(0 < lr < 1e-6 for lr in scalars["train/lr"])  # still inside the 6-step linear warm-up
    assert all(math.isfinite(v) for v in scalars["train/loss"])
    assert not any(tag.startswith("grad_norm/vit/") for tag in scalars)  # frozen ViT: no gradients
    assert any(tag.startswith("grad_norm/llm/") for tag in scalars)

    reports = json.loads((log_dir / "stage_reports.json").read_text())
    assert set(reports) == {"init", "final"}  # greedy validation before training, and at the end
    assert reports["init"]["sources"]["synthetic_counting"]["count"] == 4


# Each runs conf/tiny.yaml (+ overlay) for 1 warm-start + 1 RL step; freeze_vision is tiny.yaml's own choice.
TINY_OVERLAYS = [
    None,
    "freeze_language",
    "freeze_none",
    "off_policy",
    "tiny_reasoning_only",
    "tiny_perception_only",
]


@pytest.mark.slow
@pytest.mark.parametrize("overlay", TINY_OVERLAYS, ids=lambda o: o or "tiny")
def test_tiny_and_ablations_run(overlay, tmp_path):
    files = [TINY] + ([_ablation(overlay)] if overlay else [])
    small = ["--trainer.max_steps=2", "--model.warm_start_steps=1", "--model.max_new_tokens=8",
             "--model.reward_workers=0", "--data.batch_size=2", "--data.val_synthetic={counting: 4}",
             "--trainer.log_every_n_steps=1", f"--trainer.default_root_dir={tmp_path}",
             f"--trainer.logger.init_args.save_dir={tmp_path}"]  # fmt: skip
    cli = cli_main(args=["fit", *_config_args(files), *small])
    module, trainer = cli.model, cli.trainer
    k = module.hparams.updates_per_rollout
    assert trainer.global_step == 1 + k  # one warm-start step, then one rollout batch of k optimizer steps

    log_dir = Path(trainer.log_dir)
    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["model"]["warm_start_steps"] == 1
    assert saved["model"]["freeze"] == module.hparams.freeze and saved["model"]["updates_per_rollout"] == k
    assert (log_dir / "checkpoints" / "last.ckpt").is_file()
    scalars = _scalars(log_dir)
    assert "warm_start/loss" in scalars and "train/reward_mean" in scalars
    assert scalars["train/steps"] == [k]  # optimizer steps (minibatches) of the one RL batch
    reports = json.loads((log_dir / "stage_reports.json").read_text())
    assert set(reports) == {"after_warm_start", "final"}  # conf/tiny.yaml: no report of the random init

    # The RL stage ran under the overlay's freeze: the policy's flags and the RL optimizer's parameters agree.
    freeze = module.hparams.freeze
    assert freeze == {"freeze_language": "language", "freeze_none": "none"}.get(overlay, "vision")
    _check_frozen(module, freeze)
    rl_params = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert rl_params == {id(p) for p in module.policy.parameters() if p.requires_grad}

    sources = {s.name for s in cli.datamodule.train_sources}
    want = {"tiny_reasoning_only": {"chart", "math"},
            "tiny_perception_only": {"grounding", "detection", "counting", "ocr"}}.get(
        overlay, {"grounding", "detection", "counting", "ocr", "chart", "math"})  # fmt: skip
    assert sources == {f"synthetic_{t}" for t in want}
