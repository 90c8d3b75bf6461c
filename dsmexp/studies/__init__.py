"""Studies drawn from saved runs: the paper's figures, claims and report (paper/) and the dimension
study (dimension/), with the plotting and markdown helpers they share."""
