"""lit-triune's command line: `python lit_triune/main.py fit -c conf/orsta.yaml` (also validate, test).

LightningCLI builds TriuneModule, TriuneDataModule, the Trainer and its callbacks from YAML; configs
use omegaconf interpolation (`${model.group_size}`), resolved after command-line overrides are
merged, and the resolved config is saved with the run (`config.yaml` in the log dir).
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

from lightning.pytorch.cli import LightningCLI  # noqa: E402

from lit_triune.data import TriuneDataModule  # noqa: E402
from lit_triune.rl.module import TriuneModule  # noqa: E402


class TriuneCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001
        # The data module renders prompts with the policy's own chat template and image processor.
        parser.link_arguments("model.model_path", "data.model_path")
        parser.link_arguments("model.seed", "data.seed")


def cli_main(args: list[str] | None = None, run: bool = True) -> TriuneCLI:
    return TriuneCLI(
        TriuneModule,
        TriuneDataModule,
        args=args,
        run=run,
        parser_kwargs={"parser_mode": "omegaconf+"},
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    cli_main()
