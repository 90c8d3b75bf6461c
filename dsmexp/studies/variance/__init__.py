"""The gradient-variance study (make variance): DSM's variance fixes against ISM on the paper's data."""
