"""Evaluation and experience recording of trained policies in the simulator (layer 4)."""
