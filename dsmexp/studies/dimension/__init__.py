"""The dimension study: its numbers and verdict, timing, figures and report."""
