"""Views of the model; each observes model signals and sends user intent up as signals."""
