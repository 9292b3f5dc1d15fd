"""Data: sample schema, WebDataset shards, synthetic tasks, converters, filters and the DataModule."""

from lit_triune.data.batch import SKIP_REASONS, PromptBatch, PromptBuilder, SkipSample, collate
from lit_triune.data.cot import DEFAULT_TEMPLATES, CoTPool
from lit_triune.data.schema import SampleError, known_verifiers, validate_sample
from lit_triune.data.sft import sft_target
from lit_triune.data.shards import Manifest, ShardWriter, iter_shard, resolve_shards
from lit_triune.data.stream import ShardStream, Source
from lit_triune.data.synthetic import TASKS, generate

__all__ = [
    "DEFAULT_TEMPLATES", "SKIP_REASONS", "TASKS", "CoTPool", "Manifest", "PromptBatch", "PromptBuilder",
    "SampleError", "ShardStream", "ShardWriter", "SkipSample", "Source", "TriuneDataModule", "collate",
    "generate", "iter_shard", "known_verifiers", "resolve_shards", "sft_target", "validate_sample",
]


def __getattr__(name: str):
    """TriuneDataModule imports Lightning; load it only when asked, so readers and tools stay light."""
    if name == "TriuneDataModule":
        from lit_triune.data.datamodule import TriuneDataModule

        return TriuneDataModule
    raise AttributeError(f"module 'lit_triune.data' has no attribute {name!r}")
