"""The shapes world: the procedural world Recast's shipped model is trained and benchmarked on."""
