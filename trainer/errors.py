"""Errors of the trainer's configuration, naming the parameter (the workflow tooling turns them into
messages that name the file and key)."""


class ConfigValueError(ValueError):
    """A configuration value outside what the trainer accepts; ``param`` names it."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
