"""The sync as plain functions: source → Finch extraction → snapshot → validation → load.

Assets call into these so the same code runs from Dagster, the CLI and tests.
"""
