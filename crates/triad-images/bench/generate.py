"""Makes the benchmark's input: COUNT JPEGs of WIDTHxHEIGHT with photographic content (smooth
gradients under Gaussian noise and a few soft shapes, so that the entropy coder has real work,
unlike flat colour), quality 90, 4:2:0, as cameras write. DISTINCT different pictures are drawn
(fixed seeds) and copied to fill COUNT files.

    python generate.py DIR [--count 200] [--width 4000] [--height 3000] [--distinct 10]
"""

import argparse
import os
import random
import shutil

from PIL import Image, ImageDraw, ImageFilter


def picture(width, height, seed):
    rng = random.Random(seed)
    channels = []
    for channel in range(3):
        gradient = Image.linear_gradient("L").rotate(rng.uniform(0, 360)).resize((width, height))
        radial = Image.radial_gradient("L").resize((width, height))
        noise = Image.effect_noise((width, height), rng.uniform(20, 40))
        mixed = Image.blend(Image.blend(gradient, radial, rng.uniform(0.2, 0.6)), noise, 0.35)
        channels.append(mixed)
    image = Image.merge("RGB", channels)
    shapes = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(shapes)
    for _ in range(40):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 40, width // 6)
        fill = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    shapes = shapes.filter(ImageFilter.GaussianBlur(width / 200))
    return Image.blend(image, shapes, 0.4)


def generate(directory, count, width, height, distinct):
    """COUNT files in DIRECTORY: DISTINCT pictures, copied round."""
    os.makedirs(directory, exist_ok=True)
    distinct = min(distinct, count)
    for index in range(count):
        path = os.path.join(directory, f"img{index:04d}.jpg")
        if index < distinct:
            picture(width, height, seed=index).save(path, quality=90, subsampling=2)
        else:
            shutil.copyfile(os.path.join(directory, f"img{index % distinct:04d}.jpg"), path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--distinct", type=int, default=10)
    args = parser.parse_args()
    generate(args.dir, args.count, args.width, args.height, args.distinct)


if __name__ == "__main__":
    main()
