"""Settings read under a new name, with the old name still honoured for a while.

Deployments set settings in their environment; renaming one must not change what a running
deployment does. The new name wins; the old one is read when only it is set, with a
DeprecationWarning on stderr naming the new one. Imported by pickwise/settings.py, so it
imports nothing from Django beyond what the settings module does.
"""

import os
import warnings

import environ

RENAMED = "The setting {old} is renamed {new}; {old} is still read but will be removed."
RENAMED_IGNORED = "The setting {old} is renamed {new}; both are set, so {old} is ignored."


class RenamedSettingWarning(DeprecationWarning):
    """A deployment still sets a setting under its old name."""


# DeprecationWarning is silent by default outside __main__: this one is for operators.
warnings.simplefilter("default", RenamedSettingWarning)


def renamed_int(env: environ.Env, *, new: str, old: str, default: int) -> int:
    """The integer setting `new`, or `old` when only that is set (warning), or `default`."""
    if old in os.environ:
        message = RENAMED_IGNORED if new in os.environ else RENAMED
        warnings.warn(message.format(old=old, new=new), RenamedSettingWarning, stacklevel=2)
        if new not in os.environ:
            return env.int(old)
    return env.int(new, default=default)
