"""URL converters, and the range of our database ids."""

# Ids and sequence numbers are PostgreSQL bigints; larger input must be refused
# as bad input, not reach the database and fail there ("out of range": a 500).
BIGINT_MAX = 2**63 - 1


class IdConverter:
    """A database id in a URL: at most 18 digits, so it always fits a bigint
    (a longer number answers 404 instead of a database error)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
