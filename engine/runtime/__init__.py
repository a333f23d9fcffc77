"""What every stage runs on: model loading, the tensor cache, progress and cancel, video I/O."""
