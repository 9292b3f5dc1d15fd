"""Reusable Lightning callbacks for RL on vision-language models (nothing here imports lit_triune)."""

from triune_callbacks.dynamic_iou_threshold import DynamicIoUThreshold
from triune_callbacks.layer_grad_norm import LayerGradNorm
from triune_callbacks.metrics import SourceStats
from triune_callbacks.rollout_callback import RolloutCallback
from triune_callbacks.rollout_samples_logger import RolloutSamplesLogger
from triune_callbacks.scheduled_value import ScheduledValue
from triune_callbacks.source_metrics import SourceMetrics

__all__ = [
    "DynamicIoUThreshold",
    "LayerGradNorm",
    "RolloutCallback",
    "RolloutSamplesLogger",
    "ScheduledValue",
    "SourceMetrics",
    "SourceStats",
]
