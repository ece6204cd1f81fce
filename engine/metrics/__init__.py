"""Feature extractors and metrics (`i2i eval`)."""
