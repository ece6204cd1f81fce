"""Input encoders: user inputs (colour maps, instance maps, sketches, keypoints) to network tensors."""
