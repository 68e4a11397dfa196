"""Weights: how constant weights and biases are turned into integers (pure numpy)."""
