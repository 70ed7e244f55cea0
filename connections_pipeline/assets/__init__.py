"""Dagster assets and asset checks; thin, they call into the modules beside them."""
