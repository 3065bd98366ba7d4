"""A stand-in for a driven Blender (agent.warm) whose two outputs arrive out of order.

Started as the driven command (``... --out PATTERN --python-expr DRIVER``; the driver is
ignored), it reads a line per chunk, ``TOKEN FRAME...``, saves each frame, and ends the
chunk as the driver does, with the marker on both outputs, but prints the marker on
stdout first, then a last line on stderr (``last words TOKEN``), then the stderr marker:
what two pipes read side by side can deliver. ``--linger S``: at the end of its input
it takes S seconds to quit (a big scene's clean-up); ``--glued``: an unfinished line
on stderr before its marker; ``--stdout-only``: no stderr marker at all. Standard library only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_renderer import frame_path, tiny_png

DONE = "RenderHub: chunk rendered"


def main() -> int:
    pattern = sys.argv[sys.argv.index("--out") + 1]
    linger = float(sys.argv[sys.argv.index("--linger") + 1]) if "--linger" in sys.argv else 0
    for line in sys.stdin:
        token, *frames = line.split()
        for word in frames:
            path = frame_path(pattern, int(word))
            Path(path).write_bytes(tiny_png(int(word)))
            print(f"Fra:{word} Mem:1M | Saved: '{path}'", flush=True)
        print(DONE, token, flush=True)
        time.sleep(0.3)  # the agent sees the stdout marker well before the rest
        print(f"last words {token}", file=sys.stderr, flush=True)
        if "--glued" in sys.argv:  # another thread's line, not ended yet
            print("W: partial", end="", file=sys.stderr, flush=True)
        if "--stdout-only" not in sys.argv:
            print(DONE, token, file=sys.stderr, flush=True)
    time.sleep(linger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
