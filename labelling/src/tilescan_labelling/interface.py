"""The Label Studio labelling interface: what a person sees and what the tools read back.

A person paints the defects with a brush label per class, or ticks "Defect-free". The model's mask
arrives pre-painted as ``Defect`` (it finds defects, not their class), so a correction is to repaint,
relabel or erase it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from label_studio_sdk.converter.brush import mask2rle

IMAGE, BRUSH, VERDICT = "image", "defect", "verdict"
CLASSES = ("blowhole", "break", "crack", "fray", "uneven")
UNKNOWN = "defect"  # the class of a defect painted with the model's label and never given a class
DEFECT_FREE = "Defect-free"

LABEL_CONFIG = f"""<View>
  <Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>
  <BrushLabels name="{BRUSH}" toName="{IMAGE}">
{chr(10).join(f'    <Label value="{c.capitalize()}"/>' for c in (*CLASSES, UNKNOWN))}
  </BrushLabels>
  <Choices name="{VERDICT}" toName="{IMAGE}" choice="single" showInline="true">
    <Choice value="{DEFECT_FREE}"/>
  </Choices>
</View>
"""


def label_of(cls: str) -> str:
    """``blowhole`` -> ``Blowhole``."""
    return cls.capitalize()


def class_of(label: str) -> str:
    """``Blowhole`` -> ``blowhole``; ``ValueError`` for a label the interface does not have."""
    cls = label.lower()
    if cls not in (*CLASSES, UNKNOWN):
        raise ValueError(
            f"label {label!r} is not one of the interface's {[label_of(c) for c in (*CLASSES, UNKNOWN)]}"
        )
    return cls


def painted(mask: np.ndarray, label: str) -> list[dict[str, Any]]:
    """An annotation's result: the 0/1 ``mask`` painted with brush ``label`` (Label Studio's brush RLE)."""
    height, width = mask.shape
    value = {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]}
    return [
        {
            "from_name": BRUSH,
            "to_name": IMAGE,
            "type": "brushlabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": value,
        }
    ]


def ticked_defect_free() -> list[dict[str, Any]]:
    """An annotation's result: the tile ticked "Defect-free"."""
    return [{"from_name": VERDICT, "to_name": IMAGE, "type": "choices", "value": {"choices": [DEFECT_FREE]}}]
