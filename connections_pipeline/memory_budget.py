"""How much memory a run may use beyond its own Python objects (CONNECTIONS_MEMORY_LIMIT_MB).

The budget is shared out: the raw-response chunk a sync holds before writing it to its spill
folder gets a 64th (bodies decode to several times their size while the chunk is read), and
an embedded DuckDB warehouse a quarter, past which DuckDB spills to a temp folder of its own. The
rest is headroom for the frames of the snapshot, sized for one row per connection.
"""

from dataclasses import dataclass

MIB = 2**20
MEMORY_LIMIT_SETTING = "CONNECTIONS_MEMORY_LIMIT_MB"
# Sized for a 4 GiB run container: Dagster, the interpreter and the snapshot's frames use
# the rest.
DEFAULT_MEMORY_LIMIT_MB = 2048
MIN_MEMORY_LIMIT_MB = 256


@dataclass(frozen=True)
class MemoryBudget:
    limit_mb: int = DEFAULT_MEMORY_LIMIT_MB

    def __post_init__(self) -> None:
        if isinstance(self.limit_mb, bool) or not isinstance(self.limit_mb, int):
            raise ValueError(f"{MEMORY_LIMIT_SETTING} must be a whole number of MB")
        if self.limit_mb < MIN_MEMORY_LIMIT_MB:
            raise ValueError(
                f"{MEMORY_LIMIT_SETTING} is {self.limit_mb}; at least {MIN_MEMORY_LIMIT_MB} "
                "(MB) is needed to hold a chunk of Finch's answers and DuckDB's working set"
            )

    @property
    def spool_chunk_bytes(self) -> int:
        return max(self.limit_mb * MIB // 64, MIB)

    @property
    def duckdb_limit_mb(self) -> int:
        return self.limit_mb // 4
