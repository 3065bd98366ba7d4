"""A stand-in renderer that talks like Blender: ``fake_render.py PATTERN FRAMES MODE``.

MODE ok writes a small PNG per frame; fail prints an error and exits 3 before any frame;
slow starts frame one and then sleeps (for cancel and heartbeat tests); steady takes about
a second per frame (for tests that kill things mid-chunk).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image


def main() -> int:
    pattern, frames, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "fail":
        print("Error: License server unreachable (fake)", file=sys.stderr, flush=True)
        return 3
    for number in (int(f) for f in frames.split(",")):
        print(f"Fra:{number} Mem:1.00M | Time:00:00.01 | Sample 1/1", flush=True)
        if mode == "slow":
            time.sleep(120)
        elif mode == "steady":
            time.sleep(1)
        out = Path(pattern.replace("####", f"{number:04d}") + ".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (number * 40 % 256, 80, 160)).save(out)
        print(f"Saved: '{out}'", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
