"""A study claim judged seed by seed (the variance, noise-kernel and energy studies), and its table.

Verdict: supported when every seed satisfies the rule, not supported when none does, mixed otherwise,
inconclusive when a run it needs is missing (a seed's result is None).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Claim:
    claim: str
    source: str
    rule: str
    results: list[tuple[bool | None, str]]  # per seed: (satisfied, or None when a run is missing; numbers)

    @property
    def verdict(self) -> str:
        known = [ok for ok, _ in self.results if ok is not None]
        if not known:
            return "inconclusive"
        if all(known):
            return "supported"
        return "not supported" if not any(known) else "mixed"

    @property
    def numbers(self) -> str:
        return "; ".join(text for _, text in self.results) or "missing runs"


def claims_table(claims: list[Claim], source: str = "source") -> list[str]:
    """Markdown rows: claim, its source, the rule fixed before the runs, the numbers, the verdict."""
    lines = [f"| claim | {source} | rule (fixed before the runs) | numbers | verdict |",
             "|---|---|---|---|---|"]
    for c in claims:
        verdict = c.verdict if c.verdict == "supported" else f"**{c.verdict}**"
        lines.append(f"| {c.claim} | {c.source} | {c.rule} | {c.numbers} | {verdict} |")
    return lines
