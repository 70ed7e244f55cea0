"""Rebuild Finch's Connections page as warehouse tables, CSV drops and SQL models."""
