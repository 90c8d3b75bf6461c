"""`python -m dsmexp.sweeps SWEEP_DIR`: rebuild a sweep's runs.csv from its files (records/tables.py)."""

from dsmexp.records.tables import main

if __name__ == "__main__":
    main()
