"""Reusable Lightning callbacks for RL on vision-language models (nothing here imports lit_triune)."""

from callbacks.dynamic_iou_threshold import DynamicIoUThreshold
from callbacks.layer_grad_norm import LayerGradNorm
from callbacks.metrics import SourceStats
from callbacks.rollout_callback import RolloutCallback
from callbacks.rollout_samples_logger import RolloutSamplesLogger
from callbacks.scheduled_value import ScheduledValue
from callbacks.source_metrics import SourceMetrics

__all__ = [
    "DynamicIoUThreshold",
    "LayerGradNorm",
    "RolloutCallback",
    "RolloutSamplesLogger",
    "ScheduledValue",
    "SourceMetrics",
    "SourceStats",
]
