"""Demo content for a fresh install: prompts and, without a GPU stack, images drawn with Pillow."""

import io
import random

from PIL import Image as PILImage
from PIL import ImageDraw

DEMO_PROMPTS = [
    "a red fox sleeping in fresh snow",
    "a lighthouse on a cliff at sunset",
    "a bowl of ramen with a soft-boiled egg",
    "an astronaut riding a horse on the moon",
    "a watercolor painting of a quiet harbor",
    "a robot watering plants in a greenhouse",
    "a cozy reading nook with a cat",
    "a mountain lake reflecting pine trees",
    "a futuristic city street in the rain",
    "a stack of pancakes with blueberries",
    "an owl perched on a mossy branch",
    "a vintage bicycle leaning on a brick wall",
    "a hot air balloon over lavender fields",
    "a knight in shining armor, oil painting",
    "a tiny house in a magical forest",
    "a sailboat on a stormy sea",
    "a close-up of a dewy spider web",
    "a neon sign reading OPEN in a dark alley",
    "a golden retriever puppy playing in leaves",
    "a desert canyon under a starry sky",
]
DEMO_MODELS = ["demo-circles", "demo-squares", "demo-stripes", "demo-dots"]


def draw_demo_image(*, prompt: str, model: str, size: int = 256) -> bytes:
    """A deterministic abstract picture per (prompt, model), marked as a demo image."""
    rng = random.Random(f"{prompt}|{model}")
    base = tuple(rng.randrange(40, 220) for _ in range(3))
    image = PILImage.new("RGB", (size, size), base)
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        colour = tuple(rng.randrange(0, 256) for _ in range(3))
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 16, size // 4)
        if model.endswith("circles"):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        elif model.endswith("squares"):
            draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
        elif model.endswith("stripes"):
            draw.rectangle((0, y, size, y + r // 3), fill=colour)
        else:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
    draw.rectangle((0, size - 22, size, size), fill=(0, 0, 0))
    draw.text((6, size - 18), "demo image", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
