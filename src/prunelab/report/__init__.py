"""Tables and plots of results."""

from prunelab.report.tables import format_stat, format_table, pivot

__all__ = ["format_stat", "format_table", "pivot"]
