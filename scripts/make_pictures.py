"""The README's pictures, regenerated from a `vidpolicy demo` output directory (never drawn by hand):

    .venv/bin/python scripts/make_pictures.py demo_out      # -> docs/images/{imagine,reconstruction,rollout}.png

imagine.png: the demo's contact sheet (history | imagined future | what happened); reconstruction.png: one demo
episode through the tokenizer (original | rebuilt); rollout.png: a frame of the first rollout video (what the robot
did | what it imagined).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
MAX_WIDTH = 640


def save(image: np.ndarray | Image.Image, name: str) -> Path:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if img.width > MAX_WIDTH:
        img = img.resize((MAX_WIDTH, round(img.height * MAX_WIDTH / img.width)), Image.LANCZOS)
    elif img.width < MAX_WIDTH // 2:  # small clips: whole pixels, bigger
        k = MAX_WIDTH // 2 // img.width + 1
        img = img.resize((img.width * k, img.height * k), Image.NEAREST)
    OUT.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(OUT / name, optimize=True)
    return OUT / name


def middle_frame(video: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(video))
    return reader[len(reader) // 2].asnumpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a `vidpolicy demo` output directory")
    args = ap.parse_args()
    from vidpolicy.tokenizer.reconstruct import reconstruct

    print(save(Image.open(args.demo / "imagine.png"), "imagine.png"))
    episode = sorted((args.demo / "robot_demos" / "videos").rglob("*.mp4"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        reconstruct(str(args.demo / "tokenizer"), str(episode), f"{tmp}/recon.mp4", max_clips=16)
        print(save(middle_frame(Path(tmp) / "recon.mp4"), "reconstruction.png"))
    rollout = sorted((args.demo / "rollout_policy" / "videos").glob("*.mp4"))[0]
    print(save(middle_frame(rollout), "rollout.png"))


if __name__ == "__main__":
    main()
