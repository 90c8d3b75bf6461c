"""`python -m dsmexp.dimension SWEEP_DIR [--out DIR]`: the dimension study's figures and report from its
saved runs (dsmexp/studies/dimension/report.py)."""

from dsmexp.studies.dimension.report import main

if __name__ == "__main__":
    main()
