"""Metrics: pure, vectorised functions over the run's tables (no I/O).

* :mod:`~auditkit.metrics.stats`: binomial intervals, Newcombe and paired (Tango) intervals for
  differences, exact McNemar, Holm, cluster bootstrap, order-statistic bounds, sample sizes;
* :mod:`~auditkit.metrics.classification`: escape / overkill / detection rates, summary scores
  (balanced accuracy, F2, kappa, ROC AUC, average precision), escaped ppm, operating points,
  part aggregation, confusion matrices;
* :mod:`~auditkit.metrics.groups`: per-slice counts and rates (by_group, difference, ratio,
  Newcombe intervals, homogeneity test, Holm across slices);
* :mod:`~auditkit.metrics.comparison`: candidate vs baseline model on the same parts;
* :mod:`~auditkit.metrics.efficiency`: latency percentiles and throughput;
* :mod:`~auditkit.metrics.compute`: ``metrics.json`` from the tables.

``docs/metrics.md`` lists every metric with its formula, denominator, interval and reference.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditkit.metrics.classification import (
        ConfusionCounts,
        EscapedPpm,
        OperatingPoint,
        Rate,
        accuracy,
        balanced_accuracy,
        class_confusion_matrix,
        cohen_kappa,
        confusion_counts,
        detection_rate,
        escape_rate,
        escaped_ppm,
        f1_score,
        f2_score,
        false_call_share,
        fbeta_score,
        overkill_rate,
        parts_from_images,
        per_class_rates,
        pr_auc,
        precision,
        rates_by_threshold,
        roc_auc,
        threshold_for_escape,
    )
    from auditkit.metrics.comparison import (
        BaselineComparison,
        PairedDifference,
        compare_to_baseline,
    )
    from auditkit.metrics.compute import (
        METRICS_FORMAT,
        compute_metrics,
    )
    from auditkit.metrics.efficiency import (
        latency_summary,
        throughput,
    )
    from auditkit.metrics.groups import (
        HomogeneityTest,
        SliceSpread,
        by_group,
        difference,
        holm_slice_tests,
        homogeneity_test,
        rate_difference,
        rate_ratio,
        ratio,
        slice_counts,
        slice_rates,
    )
    from auditkit.metrics.stats import (
        BootstrapResult,
        binomial_interval,
        binomial_intervals,
        bonferroni_level,
        cluster_bootstrap,
        demonstration_sample_size,
        holm_adjust,
        holm_levels,
        mcnemar_exact,
        newcombe_interval,
        newcombe_intervals,
        paired_difference_interval,
        quantile_bounds,
        zero_failure_sample_size,
        zero_failure_upper_bound,
    )

# Each name loads its own module when first used (PEP 562): the replay imports
# auditkit.metrics.efficiency for its latency estimates, and importing every module here
# would load scipy.stats (~1 s) on that path too.
_MODULE_OF: dict[str, str] = {
    "ConfusionCounts": "classification",
    "EscapedPpm": "classification",
    "OperatingPoint": "classification",
    "Rate": "classification",
    "accuracy": "classification",
    "balanced_accuracy": "classification",
    "class_confusion_matrix": "classification",
    "cohen_kappa": "classification",
    "confusion_counts": "classification",
    "detection_rate": "classification",
    "escape_rate": "classification",
    "escaped_ppm": "classification",
    "f1_score": "classification",
    "f2_score": "classification",
    "false_call_share": "classification",
    "fbeta_score": "classification",
    "overkill_rate": "classification",
    "parts_from_images": "classification",
    "per_class_rates": "classification",
    "pr_auc": "classification",
    "precision": "classification",
    "rates_by_threshold": "classification",
    "roc_auc": "classification",
    "threshold_for_escape": "classification",
    "BaselineComparison": "comparison",
    "PairedDifference": "comparison",
    "compare_to_baseline": "comparison",
    "METRICS_FORMAT": "compute",
    "compute_metrics": "compute",
    "latency_summary": "efficiency",
    "throughput": "efficiency",
    "HomogeneityTest": "groups",
    "SliceSpread": "groups",
    "by_group": "groups",
    "difference": "groups",
    "holm_slice_tests": "groups",
    "homogeneity_test": "groups",
    "rate_difference": "groups",
    "rate_ratio": "groups",
    "ratio": "groups",
    "slice_counts": "groups",
    "slice_rates": "groups",
    "BootstrapResult": "stats",
    "binomial_interval": "stats",
    "binomial_intervals": "stats",
    "bonferroni_level": "stats",
    "cluster_bootstrap": "stats",
    "demonstration_sample_size": "stats",
    "holm_adjust": "stats",
    "holm_levels": "stats",
    "mcnemar_exact": "stats",
    "newcombe_interval": "stats",
    "newcombe_intervals": "stats",
    "paired_difference_interval": "stats",
    "quantile_bounds": "stats",
    "zero_failure_sample_size": "stats",
    "zero_failure_upper_bound": "stats",
}

__all__ = [
    "METRICS_FORMAT",
    "BaselineComparison",
    "BootstrapResult",
    "ConfusionCounts",
    "EscapedPpm",
    "HomogeneityTest",
    "OperatingPoint",
    "PairedDifference",
    "Rate",
    "SliceSpread",
    "accuracy",
    "balanced_accuracy",
    "binomial_interval",
    "binomial_intervals",
    "bonferroni_level",
    "by_group",
    "class_confusion_matrix",
    "cluster_bootstrap",
    "cohen_kappa",
    "compare_to_baseline",
    "compute_metrics",
    "confusion_counts",
    "demonstration_sample_size",
    "detection_rate",
    "difference",
    "escape_rate",
    "escaped_ppm",
    "f1_score",
    "f2_score",
    "false_call_share",
    "fbeta_score",
    "holm_adjust",
    "holm_levels",
    "holm_slice_tests",
    "homogeneity_test",
    "latency_summary",
    "mcnemar_exact",
    "newcombe_interval",
    "newcombe_intervals",
    "overkill_rate",
    "paired_difference_interval",
    "parts_from_images",
    "per_class_rates",
    "pr_auc",
    "precision",
    "quantile_bounds",
    "rate_difference",
    "rate_ratio",
    "rates_by_threshold",
    "ratio",
    "roc_auc",
    "slice_counts",
    "slice_rates",
    "threshold_for_escape",
    "throughput",
    "zero_failure_sample_size",
    "zero_failure_upper_bound",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
