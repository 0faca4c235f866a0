"""auditkit: audit industrial visual-inspection AI against standards rubrics."""

__version__ = "0.1.0"
