"""The one error base that views turn into a clear message for the person in front of them."""


class ApplicationError(Exception):
    """A rule of the product was broken; ``message`` is safe to show to the user."""

    def __init__(self, message: str, *, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}

    def __str__(self) -> str:
        return self.message
