"""Recast Studio: the PySide6 desktop editor (DESIGN.md §6).

Layers, napari-style: `desktop.model` holds the editing state and knows nothing of widgets;
`desktop.client` runs the bridge's SDK (plugin_bridge) off the GUI thread; `desktop.widgets`
observe the model; `desktop.controller` turns user intent into engine calls and model updates.
"""
