"""The model stages of the method: conditioning, DDIM, inflation, tuning, inversion, masks, generation."""
