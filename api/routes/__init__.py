"""HTTP routes of the audit API."""
