"""Training: the preflight (every check that touches the machine or the disk), live tracking, the memory
estimate and the trainer (docs/architecture.md, How a step flows)."""
