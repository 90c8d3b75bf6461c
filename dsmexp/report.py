"""`python -m dsmexp.report SWEEP_DIR [--out DIR]`: the paper's figures, claims and report of a sweep
(dsmexp/studies/paper/report.py)."""

from dsmexp.studies.paper.report import main

if __name__ == "__main__":
    main()
