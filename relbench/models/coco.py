"""COCO's 80 instance classes (the order of Mask2Former's COCO instance heads and of GenEval's
``object_names.txt``) and the table from object names to them.

A closed-vocabulary detector can only answer for names that are one of its classes. The table
maps a suite's names to a class where the two mean the same thing (a plural, a common synonym);
a name it does not list is not detectable by such a detector, never guessed from a word in it.
"""

from __future__ import annotations

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

#: names that mean a COCO class without being spelled as one (COCO's own label names in the
#: HF checkpoints and in mmdet, and the everyday words for them)
SYNONYMS = {
    "man": "person", "woman": "person", "boy": "person", "girl": "person", "child": "person", "kid": "person",
    "people": "person", "lady": "person", "guy": "person", "player": "person",
    "bike": "bicycle", "motorbike": "motorcycle", "aeroplane": "airplane", "plane": "airplane",
    "ball": "sports ball", "sofa": "couch", "table": "dining table", "television": "tv", "tv monitor": "tv",
    "mouse": "computer mouse", "remote": "tv remote", "keyboard": "computer keyboard", "phone": "cell phone",
    "mobile phone": "cell phone", "fridge": "refrigerator", "doughnut": "donut", "hair dryer": "hair drier",
    "plant": "potted plant", "glass": "wine glass", "puppy": "dog", "kitten": "cat",
}


def coco_class(name: str, classes: tuple[str, ...] = COCO_CLASSES) -> str | None:
    """The COCO class ``name`` denotes, or None (not detectable by a COCO detector).

    Lower case, trimmed, a final plural "s" dropped when that gives a class ("dogs"); COCO's
    hyphenated label spellings ("hot-dog") are the same class."""
    key = " ".join(name.strip().lower().replace("-", " ").split())
    for cand in (key, key[:-1] if key.endswith("s") else None):
        if cand is None:
            continue
        cand = SYNONYMS.get(cand, cand)
        if cand in classes:
            return cand
    return None
