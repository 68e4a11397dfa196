"""Accuracy tools: checks and corrections that look at what a quantized model will compute."""
