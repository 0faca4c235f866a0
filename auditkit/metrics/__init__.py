"""Metrics: pure, vectorised functions over the run's tables (no I/O).

* :mod:`~auditkit.metrics.stats`: binomial intervals, order-statistic bounds, sample sizes;
* :mod:`~auditkit.metrics.classification`: escape / overkill / detection rates, part
  aggregation, confusion matrices;
* :mod:`~auditkit.metrics.groups`: per-slice counts and rates (by_group, difference, ratio);
* :mod:`~auditkit.metrics.efficiency`: latency percentiles and throughput;
* :mod:`~auditkit.metrics.compute`: ``metrics.json`` from the tables.
"""

from auditkit.metrics.classification import (
    ConfusionCounts,
    Rate,
    accuracy,
    class_confusion_matrix,
    confusion_counts,
    detection_rate,
    escape_rate,
    f1_score,
    false_call_share,
    overkill_rate,
    parts_from_images,
    precision,
)
from auditkit.metrics.compute import METRICS_FORMAT, compute_metrics
from auditkit.metrics.efficiency import latency_summary, throughput
from auditkit.metrics.groups import by_group, difference, ratio, slice_counts
from auditkit.metrics.stats import (
    binomial_interval,
    binomial_intervals,
    demonstration_sample_size,
    quantile_bounds,
    zero_failure_sample_size,
    zero_failure_upper_bound,
)

__all__ = [
    "METRICS_FORMAT",
    "ConfusionCounts",
    "Rate",
    "accuracy",
    "binomial_interval",
    "binomial_intervals",
    "by_group",
    "class_confusion_matrix",
    "compute_metrics",
    "confusion_counts",
    "demonstration_sample_size",
    "detection_rate",
    "difference",
    "escape_rate",
    "f1_score",
    "false_call_share",
    "latency_summary",
    "overkill_rate",
    "parts_from_images",
    "precision",
    "quantile_bounds",
    "ratio",
    "slice_counts",
    "throughput",
    "zero_failure_sample_size",
    "zero_failure_upper_bound",
]
