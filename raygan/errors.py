"""User-facing errors: the CLI prints them as one line and exits with code 2.

Anything a user can cause (bad config, missing data, a checkpoint that does not fit)
raises a subclass of RayganError with a message that names the problem and, where it
helps, what to do. Bugs stay ordinary exceptions with tracebacks.
"""


class RayganError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class ConfigError(RayganError):
    """Invalid config, unknown key, unknown registry name."""


class DataError(RayganError):
    """Dataset missing or unreadable."""


class CheckpointError(RayganError):
    """Checkpoint corrupt, missing, or made for another model."""


class DivergenceError(RayganError):
    """Losses stayed non-finite for several ticks."""


class RunDirError(RayganError):
    """A run directory that already holds a run, or none where one is expected."""


class ArgumentError(ConfigError):
    """A bad argument of a Python API call. The message names the API parameter (`num_samples`);
    the CLI, whose flags are the parameters spelled `--num-samples`, names the flag instead."""

    def __init__(self, template: str, param: str):
        self.template, self.param = template, param
        super().__init__(template.format(name=param))

    def for_cli(self) -> str:
        return self.template.format(name="--" + self.param.rstrip("_").replace("_", "-"))  # class_ -> --class


class Interrupted(KeyboardInterrupt):
    """A run stopped on request: Ctrl-C (SIGINT) or SIGTERM. `signum` says which (the CLI exits
    128 + signum, as a process killed by it would); `checkpoint` is what was saved on the way out."""

    def __init__(self, signum: int = 2, checkpoint=None):
        super().__init__(signum)
        self.signum = int(signum)
        self.checkpoint = checkpoint
