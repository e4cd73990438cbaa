"""Regenerate tests/data/frame_references.npz and tests/data/frame_digests.json from the frame
recipe as it is (the cases of tests/test_frames.py: the demo, and a tiny BigGAN driven by the
demo motion), on this machine:

    python tests/data/make_frame_references.py            # writes both files, says what changed
    python tests/data/make_frame_references.py --check    # writes nothing: how far this machine is

frame_references.npz holds, per case, ``reduced`` frames (two frames at 32 px, uint8), which
tests/test_frames.py compares within a level or two of uint8 on any CPU; frame_digests.json the
sha256 of every frame of every case and ``this_machine()`` (CPU model and vector extensions,
ATen's CPU capability, torch version), where the test compares them bit for bit (elsewhere it
skips them). Re-record only for an intended change of the frames, or to move the bitwise check
to another machine (--check first: the references must stay within the tolerance).
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.test_frames import (  # noqa: E402 - ROOT first: this checkout's tests package
    BIGGAN_CASES,
    DEMO_CASES,
    DIGESTS,
    MAX_LEVELS,
    MEAN_LEVELS,
    REFERENCES,
    case_frames,
    digest,
    reduced,
    this_machine,
    tiny_biggan,
)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the stored files and write nothing")
    args = p.parse_args()
    old = json.loads(DIGESTS.read_text()) if DIGESTS.is_file() else {"machine": None, "digests": {}}
    old_frames = dict(np.load(REFERENCES)) if REFERENCES.is_file() else {}
    machine = this_machine()
    print(f"this machine: {machine}")
    if old["machine"] != machine:
        print(f"the digests were taken on: {old['machine']}")
    frames, digests = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MOCOHD_HOME"] = str(Path(tmp) / "home")  # nothing goes to the user's store
        biggan = tiny_biggan(Path(tmp))
        for name in [*DEMO_CASES, *BIGGAN_CASES]:
            video = case_frames(name, biggan if name in BIGGAN_CASES else None)
            frames[name], digests[name] = reduced(video), digest(video)
            said = "same digest" if old["digests"].get(name) == digests[name] else "digest CHANGED"
            if name in old_frames:
                diff = np.abs(frames[name].astype(np.int16) - old_frames[name].astype(np.int16))
                fits = diff.max() <= MAX_LEVELS and diff.mean() <= MEAN_LEVELS
                said += (
                    f"; reference max {diff.max()}, mean {diff.mean():.4f} levels "
                    f"({'within' if fits else 'OUTSIDE'} tolerance)"
                )
            print(f"{name}: {said}")
    if args.check:
        return
    np.savez_compressed(REFERENCES, **frames)
    DIGESTS.write_text(json.dumps({"machine": machine, "digests": digests}, indent=1) + "\n")
    print(f"wrote {REFERENCES} ({REFERENCES.stat().st_size} bytes) and {DIGESTS}")


if __name__ == "__main__":
    main()
