"""Talking to the engine daemon over gRPC: discovery, calls, and streams off the GUI thread."""
