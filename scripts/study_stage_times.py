"""Seconds per study stage from a study log's tqdm bars: the last elapsed time of each bar in a stage, summed
over bars and over resumed processes (manifest.json holds only the last process's stages).

Usage: python scripts/study_stage_times.py LOG
"""

import collections
import re
import sys

BAR = re.compile(r"^(\S[^:]*?):\s+\d+%.*?\|\s*(\d+)/(\d+) \[(?:(\d+):)?(\d+):(\d+)<")


def stage_seconds(text: str) -> dict[str, float]:
    """{stage: seconds} from a log whose stages start with '[selfsim study] <stage>' lines."""
    out: dict[str, float] = collections.OrderedDict()
    stage, bars = None, {}
    for line in text.replace("\r", "\n").splitlines():
        m = re.match(r"\[selfsim study\] (.+)$", line.strip())
        if m:
            if stage is not None:
                out[stage] = out.get(stage, 0.0) + sum(bars.values())
            stage, bars = m.group(1), {}
            continue
        b = BAR.match(line.strip())
        if b and stage:
            bars[b.group(1)] = int(b.group(4) or 0) * 3600 + int(b.group(5)) * 60 + int(b.group(6))
    if stage is not None:
        out[stage] = out.get(stage, 0.0) + sum(bars.values())
    return out


if __name__ == "__main__":
    seconds = stage_seconds(open(sys.argv[1], errors="replace").read())
    for name, value in seconds.items():
        print(f"{value:8.0f}  {name}")
    print(f"{sum(seconds.values()):8.0f}  total")
