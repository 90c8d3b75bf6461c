"""The paper's study: Figures 1-4, the claims and their verdict rules, and the report."""
