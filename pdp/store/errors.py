"""What a caller outside the store catches when the store cannot be reached (a connection
refused, a database gone away): SQLAlchemy's driver-level errors, named without importing
SQLAlchemy. `OperationalError` is one of them."""

from sqlalchemy.exc import DBAPIError

STORE_UNAVAILABLE: tuple[type[Exception], ...] = (DBAPIError,)
