"""Notifications: run alerts, the needs-action digest and export deliveries, over Apprise."""
