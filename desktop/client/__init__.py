"""The bridge's SDK in studio terms: finding or starting the daemon, pictures as numpy, calls off the GUI thread."""
