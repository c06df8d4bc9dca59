"""When the durable log's writes reach the disk: a node-wide policy chosen at start.

It lives in the pure core so that the configuration (which may import only core) holds the enum
itself: the CLI parses the flag into it once, and the store receives it unchanged.
`replog.storage.disk` describes what each policy can lose on a machine crash.
"""

from __future__ import annotations

import enum


class FsyncPolicy(enum.Enum):
    ALWAYS = "always"  # an entry counts as stored only after its fsync (group commit)
    INTERVAL = "interval"  # stored on write; fsync at most every fsync_interval_s
    NEVER = "never"  # stored on write; the kernel writes back when it likes

    def __str__(self) -> str:
        """The flag's spelling, for help texts and log lines (`fsync=always`)."""
        return self.value

    @classmethod
    def parse(cls, raw: str) -> FsyncPolicy:
        """The policy a flag or env value names; ValueError naming the choices otherwise."""
        try:
            return cls(raw.strip().lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ValueError(f"fsync policy must be one of {names}, got {raw!r}") from None
