"""lit-triune's command line: `python lit_triune/main.py fit -c conf/orsta.yaml` (also validate, test).

LightningCLI builds TriuneModule, TriuneDataModule, the Trainer and its callbacks from YAML; configs
use omegaconf interpolation (`${model.group_size}`), resolved after command-line overrides are
merged, and the resolved config is saved with the run (`config.yaml` in the log dir). Integer
arithmetic resolvers `${add:a,b}`, `${mul:a,b}` and `${div:a,b}` (exact division) let a config derive
one value from another, e.g. the per-rank batch from the global one (conf/orsta.yaml).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: keep lit_triune/'s subfolders from shadowing top-level modules
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import math  # noqa: E402
from typing import Any  # noqa: E402

import omegaconf  # noqa: E402
from jsonargparse import set_parsing_settings  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.strategies import DDPStrategy  # noqa: E402
from lightning.pytorch.utilities.rank_zero import rank_zero_info  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from lit_triune.data import TriuneDataModule  # noqa: E402
from lit_triune.overlays import warn_replaced_callbacks  # noqa: E402
from lit_triune.progress import progress_callbacks  # noqa: E402
from lit_triune.resume import resolve_resume  # noqa: E402
from lit_triune.rl.module import TriuneModule  # noqa: E402


def _ints(xs: tuple) -> list[int]:
    return [int(x) for x in xs]  # a command-line `--trainer.devices=8` arrives as the string "8"


def _div(a: int | str, b: int | str) -> int:
    a, b = _ints((a, b))
    if b == 0 or a % b:
        raise ValueError(f"${{div:{a},{b}}}: {a} is not a multiple of {b}")
    return a // b


_RESOLVERS = {"add": lambda *xs: sum(_ints(xs)), "mul": lambda *xs: math.prod(_ints(xs)), "div": _div}


def register_resolvers() -> None:
    """Integer arithmetic for configs (omegaconf has none built in); idempotent."""
    # omegaconf 2.4 renamed register_new_resolver back to register_resolver (2.3's is the legacy string-only one)
    new_api = tuple(int(v) for v in omegaconf.__version__.split(".")[:2]) >= (2, 4)
    register = OmegaConf.register_resolver if new_api else OmegaConf.register_new_resolver
    for name, fn in _RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            register(name, fn)


class TriuneCLI(LightningCLI):
    """LightningCLI with `fit`, `validate` and `test` (TriuneModule has no `predict_step`)."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        # The data module renders prompts with the policy's own chat template and image processor.
        parser.link_arguments("model.model_path", "data.model_path")
        parser.link_arguments("model.seed", "data.seed")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured Trainer plus progress and a closing summary (lit_triune/progress.py): a bar on a
        terminal, a metrics line every `log_every_n_steps` steps otherwise. A fit whose stages train different
        parameters under a DDP strategy chosen by name gets that strategy's `find_unused_parameters=True`
        twin (the Trainer is built again with it: only then is "auto" known to mean DDP)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config.get("trainer", {})
        callbacks = list(kwargs.pop("callbacks", None) or trainer_config.get("callbacks") or [])
        added, enable_bar = progress_callbacks(callbacks, trainer_config.get("enable_progress_bar"))
        kwargs.setdefault("enable_progress_bar", enable_bar)
        trainer = super().instantiate_trainer(callbacks=callbacks + added, **kwargs)
        if self.subcommand in (None, "fit") and getattr(self.model, "stages_train_different_parameters", False):
            flag = kwargs.get("strategy", trainer_config.get("strategy", "auto"))
            name = ddp_detecting_unused_parameters(flag, trainer.strategy)
            if name is not None:  # the same DDP strategy, with unused-parameter detection
                hp = self.model.hparams
                rank_zero_info(f"DDP: strategy {name!r} (find_unused_parameters=True): the warm-start (freeze "
                               f"{hp.warm_start_freeze!r}) and RL (freeze {hp.freeze!r}) train different parameters")
                trainer = super().instantiate_trainer(callbacks=callbacks + added, **{**kwargs, "strategy": name})
        return trainer

    def before_fit(self) -> None:
        """A resume whose checkpoint cannot be read (truncated, corrupt, missing) falls back to the newest
        readable checkpoint of the same directory, with a warning (lit_triune/resume.py)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        ckpt_path = config.get("ckpt_path")
        resolved = resolve_resume(self.trainer, ckpt_path)
        if resolved != ckpt_path:
            config["ckpt_path"] = resolved


def ddp_detecting_unused_parameters(flag: Any, strategy: Any) -> str | None:
    """The registered name of DDP strategy `strategy` with `find_unused_parameters=True`, when it was chosen by
    the name `flag` ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook") and so left detection off; None
    otherwise (another strategy, an explicit `..._find_unused_parameters_*` name, or a Strategy object, whose
    settings are its owner's: TriuneModule checks them at fit start)."""
    if type(strategy) is not DDPStrategy or not isinstance(flag, str):
        return None
    if flag == "auto":  # Lightning picks "ddp", or "ddp_fork" in an interactive session
        flag = "ddp_fork" if strategy.launcher is not None and strategy.launcher.is_interactive_compatible else "ddp"
    if flag not in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        return None
    return f"{flag}_find_unused_parameters_true"


def cli_main(args: list[str] | None = None, run: bool = True) -> TriuneCLI:
    register_resolvers()
    if args is None or isinstance(args, list):  # an overlay's callback list replaces the base's: say what is lost
        warn_replaced_callbacks(sys.argv[1:] if args is None else args)
    # Under a subcommand (`fit -c ...`) jsonargparse resolves interpolations on the whole namespace, where
    # `${model.lr}` would have to be `${fit.model.lr}`; this rewrites absolute paths as relative ones at load
    # time, so the same config works with and without a subcommand (run=False).
    try:
        set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    except TypeError:  # jsonargparse too old for the setting: only configs without such interpolation work
        pass
    return TriuneCLI(
        TriuneModule,
        TriuneDataModule,
        args=args,
        run=run,
        # No prefix abbreviations: `--trainer.max_step=10` is an error, not `--trainer.max_steps=10`
        # (jsonargparse hands the setting to the subcommand parsers; tests/test_cli.py).
        parser_kwargs={"parser_mode": "omegaconf+", "allow_abbrev": False},
        save_config_kwargs={"overwrite": True},
        # TriuneModule builds its optimizers itself (RL + warm-start; the RL one is `model.optimizer` /
        # `model.lr_scheduler` as class_paths, rl/optimizers.py): the top-level --optimizer / --lr_scheduler would
        # be accepted and ignored under manual optimization, so they are not offered.
        auto_configure_optimizers=False,
    )


def main() -> None:
    """The `lit-triune` command and `python lit_triune/main.py`: run the subcommand, then leave cleanly.

    After a run that finished, its process group is destroyed and the trainer, model and strategy (which hold
    references to the group) are collected while the interpreter is fully alive. Left to interpreter
    finalization, Gloo's work threads could still be running then; one that needed the GIL was made to exit
    inside C++ and the process aborted ("terminate called without an active exception", exit -6) after a
    successful 2-process FSDP fit on CPU (about 1 run in 4 here; gdb: a `pt_gloo_runloop` thread unwinding
    during `Py_FinalizeEx`). Only after success: destroying the group while another rank may still be in a
    collective could hang.
    """
    cli_main()  # the CLI object (trainer, model, strategy) is dropped here
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


if __name__ == "__main__":
    main()
