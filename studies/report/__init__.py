"""Report statistics: which arm is best on a task, by how much and how sure (pure numbers,
no I/O). Inputs are per-seed outcomes of every arm on the same seeds."""

from studies.report.compare import (
    ArmOutcome,
    ArmSummary,
    PairComparison,
    TaskComparison,
    compare_arms,
    performance_profile,
)
from studies.report.stats import (
    Interval,
    Test,
    format_p,
    holm,
    mcnemar,
    median_interval,
    min_values_for_interval,
    ratio_of_medians,
    wilcoxon,
    wilson,
)

__all__ = [
    "ArmOutcome",
    "ArmSummary",
    "Interval",
    "PairComparison",
    "TaskComparison",
    "Test",
    "compare_arms",
    "format_p",
    "holm",
    "mcnemar",
    "median_interval",
    "min_values_for_interval",
    "performance_profile",
    "ratio_of_medians",
    "wilcoxon",
    "wilson",
]
