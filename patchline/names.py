"""The one rule for line and camera names: each is a bank folder name and an MQTT topic level."""

from __future__ import annotations

import re

from patchline.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(value: object, what: str = "line") -> str:
    """Return `value` when it is a usable line / camera name, else raise ConfigError naming `what`.

    Allowed: letters, digits, '_', '-' and '.', starting with a letter or digit (so never a path
    separator, '..', or an MQTT wildcard).
    """
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{what} name {value!r} is not allowed: use letters, digits, '_', '-' or '.', "
                          "starting with a letter or digit.")
    return value
