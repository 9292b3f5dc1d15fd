"""The command line refuses what it would otherwise guess at or ignore (issue 17 item 4, issue 13 item 6).

argparse expands an unambiguous prefix by default, so `--trainer.max_step=10` used to run as
`--trainer.max_steps=10`; `predict` and `--optimizer`/`--lr_scheduler` were offered and then failed or
were ignored. The argparse entry points (`lit-triune-prepare`, `python -m lit_triune.study`, `lit-triune-export`,
the tiny-model builder) refuse prefixes too. Everything here only parses: no fit runs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from lightning.pytorch.cli import LightningArgumentParser

from lit_triune.data import TriuneDataModule
from lit_triune.main import cli_main
from lit_triune.rl.module import TriuneModule

TINY = "conf/tiny.yaml"


@pytest.fixture(autouse=True)
def _no_pytest_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["main.py"])  # LightningCLI warns when sys.argv has arguments too


def _refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code == 2, args
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        (["fit", "-c", TINY, "--trainer.max_step=10"], "--trainer.max_step=10"),  # prefix of --trainer.max_steps
        (["fit", "-c", TINY, "--trainer.max_step", "10"], "--trainer.max_step 10"),
        (["fit", "-c", TINY, "--model.warm_start=3"], "--model.warm_start=3"),  # prefix of model.warm_start_*
        (["validate", "-c", TINY, "--trainer.limit_val_batche=1"], "--trainer.limit_val_batche=1"),  # all subcommands
        (["fit", "-c", TINY, "--model.learning_rate=1e-3"], "--model.learning_rate=1e-3"),  # no such key at all
    ],
    ids=["max_step=", "max_step", "warm_start", "validate", "unknown"],
)
def test_abbreviated_or_unknown_option_is_an_error(
    args: list[str], refused: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"unrecognized arguments: {refused}" in _refused(args, capsys)


def test_unknown_key_in_a_config_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("trainer:\n  max_step: 10\n")
    err = _refused(["fit", "-c", TINY, "-c", str(overlay)], capsys)
    assert "trainer.max_step" in err and "does not accept" in err


def test_full_names_still_parse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:  # --print_config exits 0 after parsing
        cli_main(["fit", "-c", TINY, "--trainer.max_steps=10", "--model.warm_start_steps=3",
                  "--trainer.callbacks+=triune_callbacks.LayerGradNorm", "--print_config"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "max_steps: 10" in out and "warm_start_steps: 3" in out
    assert out.count("class_path: triune_callbacks.LayerGradNorm") == 2  # tiny.yaml's and the appended one


def test_help_offers_only_what_is_implemented(capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["predict", "-c", TINY], capsys)  # invalid choice: TriuneModule has no predict_step
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    top = capsys.readouterr().out
    assert "{fit,validate,test}" in top and "predict" not in top
    with pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    fit_help = capsys.readouterr().out
    assert "--optimizer" not in fit_help and "--lr_scheduler" not in fit_help  # the module builds its AdamW
    assert "\\boxed{}" in fit_help  # the docstring's \b is no longer a backspace
    assert "\b" not in fit_help.replace("--print_config \b[=flags]", "")  # jsonargparse's own metavar trick
    _refused(["fit", "-c", TINY, "--optimizer=torch.optim.SGD"], capsys)


def test_every_module_and_datamodule_argument_has_help() -> None:
    parser = LightningArgumentParser()
    parser.add_lightning_class_args(TriuneModule, "model")
    parser.add_lightning_class_args(TriuneDataModule, "data")
    actions = [a for a in parser._actions if a.dest.startswith(("model.", "data."))]
    assert len(actions) > 50
    missing = [a.dest for a in actions if not (a.help or "").strip()]
    assert not missing, f"arguments without help text (a docstring Args entry): {missing}"


@pytest.mark.parametrize(
    ("module", "args", "refused"),
    [
        ("lit_triune.data.prepare", ["check", "--input", "shards/", "--rep", "r.json"], "--rep r.json"),
        ("lit_triune.data.prepare", ["synthetic", "--out", "o", "--task", "ocr", "--n", "4", "--shard", "2"],
         "--shard 2"),  # prefix of --shard-size
        ("lit_triune.study.__main__", ["run", "--seed", "0", "--dry-run"], "--seed 0"),  # prefix of --seeds
        ("lit_triune.study.__main__", ["table", "--o", "runs/x"], "--o runs/x"),  # prefix of --out
        ("lit_triune.export", ["last.ckpt", "out", "--model", "m"], "--model m"),  # prefix of --model-path
        ("lit_triune.models.tiny", ["--cache", "c"], "--cache c"),  # prefix of --cache-dir
        ("lit_triune.predict", ["tiny", "--out", "o", "--max", "4"], "--max 4"),  # prefix of --max-new-tokens
    ],
    ids=["prepare-check", "prepare-synthetic", "study-run", "study-table", "export", "tiny", "predict"],
)
def test_other_command_lines_refuse_abbreviations(
    module: str, args: list[str], refused: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's other entry points too: a prefix of an option is an error, never that option; nothing runs."""
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {refused}" in capsys.readouterr().err


@pytest.mark.parametrize(("strategy", "warm_start_freeze", "expected"), [
    ("ddp", "none", True),  # the ViT trains in the warm-start only: DDP must detect unused parameters
    ("auto", "none", True),  # two devices: Lightning's "auto" is DDP too
    ("ddp", "vision", False),  # both stages train the same parameters: DDP's default
    ("ddp_find_unused_parameters_false", "none", False),  # an explicit choice is kept
])
def test_fit_picks_ddp_with_unused_parameter_detection_when_the_stages_differ(
        tmp_path: Path, strategy: str, warm_start_freeze: str, expected: bool) -> None:
    """The warm-start and RL stages may train different parameters; DDP then needs
    find_unused_parameters=True, which the command line chooses by the strategy's registered name."""
    from lightning.pytorch.strategies import DDPStrategy

    cli = cli_main(["-c", TINY, "--trainer.accelerator=cpu", "--trainer.devices=2", f"--trainer.strategy={strategy}",
                    "--model.warm_start_steps=2", f"--model.warm_start_freeze={warm_start_freeze}",
                    f"--trainer.default_root_dir={tmp_path}"], run=False)
    assert cli.model.stages_train_different_parameters == (warm_start_freeze == "none")
    assert type(cli.trainer.strategy) is DDPStrategy
    assert cli.trainer.strategy._ddp_kwargs.get("find_unused_parameters", False) is expected  # read in the test only


def test_ddp_detecting_unused_parameters_leaves_other_strategies_alone() -> None:
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

    from lit_triune.main import ddp_detecting_unused_parameters

    assert ddp_detecting_unused_parameters("auto", SingleDeviceStrategy("cpu")) is None
    assert ddp_detecting_unused_parameters("ddp_spawn_find_unused_parameters_false", DDPStrategy()) is None
    assert ddp_detecting_unused_parameters(DDPStrategy(), DDPStrategy()) is None  # an object: its owner's settings
    assert ddp_detecting_unused_parameters("ddp_spawn", DDPStrategy()) == "ddp_spawn_find_unused_parameters_true"
