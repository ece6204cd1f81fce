"""Training-data recipes (`i2i data build RECIPE`)."""
