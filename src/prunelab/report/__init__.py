"""Tables and plots of results."""

from prunelab.report.tables import format_table

__all__ = ["format_table"]
