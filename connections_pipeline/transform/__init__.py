"""Pure Polars functions and Pandera schemas: no I/O, no Dagster, no HTTP.

Every business rule of the Connections page lives here and is tested directly.
"""
