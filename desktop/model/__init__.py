"""The studio's state: plain Python objects and Qt signals, no widgets (napari's model layer)."""
