"""Studies that combine tasks and algorithms into published-style comparisons."""

from frugal.study.ptq_vs_qat import StudyConfig, run_study, write_report

__all__ = ["StudyConfig", "run_study", "write_report"]
