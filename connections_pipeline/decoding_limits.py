"""How much of what Finch sends the pipeline takes: each bound declared once.

The client refuses a body past a body limit as that call's typed failure (not retried: the
same answer would come back); `transform/` quarantines a record holding a value past a value
limit, with the reason. Nothing is truncated silently and nothing raises out of the run.
README's "Decoding limits" lists these values.
"""

# A success body larger than this is not read further. Finch's largest answer, `/providers`,
# is well under 1 MiB; an `/introspect` with MAX_ENTITIES_PER_CONNECTION entities about 200 kB.
MAX_BODY_BYTES = 8 * 1024 * 1024
# JSON nesting (arrays and objects) deeper than this is refused before any decoder recurses
# into it. Finch's deepest shape (a provider's supported fields) is about 9 levels.
MAX_JSON_DEPTH = 64
# Finch's ids are UUIDs and Connect's customer_id is at most 255 characters; a longer key
# would not fit a PostgreSQL B-tree page either.
MAX_ID_CHARS = 255
# Names, e-mail addresses and other text Finch sends (company and customer names, ...).
MAX_TEXT_CHARS = 1_000
# Entities of one connection (each becomes a warehouse row).
MAX_ENTITIES_PER_CONNECTION = 1_000
# How much of a refused body a failure reason quotes.
EXCERPT_CHARS = 40
# How much of each text value a quarantined row's payload (`finch_quarantine.payload`) keeps:
# a value within every limit above is kept whole, a longer one is cut here with a marker
# giving its length, so a refused 10 MB name is not stored after all.
MAX_QUARANTINED_VALUE_CHARS = max(MAX_ID_CHARS, MAX_TEXT_CHARS)
