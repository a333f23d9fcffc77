"""The fixed shapes-world vocabulary (DESIGN.md §4). Other modules import it; nothing here draws."""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")

OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (250, 140, 30),
    "yellow": (240, 210, 40),
    "green": (40, 180, 60),
    "cyan": (40, 200, 210),
    "blue": (40, 80, 220),
    "purple": (150, 60, 190),
    "white": (240, 240, 240),
}

BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "black": (20, 20, 20),
    "navy": (20, 30, 90),
    "teal": (0, 110, 110),
    "olive": (110, 110, 20),
    "beige": (225, 210, 170),
}

PATTERNS: tuple[str, ...] = ("plain", "gradient", "striped", "checkered")

CAPTION_TEMPLATE = "a {colour} {shape} on a {pattern} {background} background"


def caption(colour: str, shape: str, pattern: str, background: str) -> str:
    return CAPTION_TEMPLATE.format(colour=colour, shape=shape, pattern=pattern, background=background)


def words() -> list[str]:
    """Every word a caption can contain, in a stable order (the tokenizer's vocabulary)."""
    fixed = ["a", "on", "background"]
    out: list[str] = []
    for w in [*fixed, *SHAPES, *OBJECT_COLOURS, *BACKGROUND_COLOURS, *PATTERNS]:
        if w not in out:
            out.append(w)
    return out
