"""Stage 5, reports. In: result records (or, for the plan, the cases). Out: text for people: report.md with the
seed page's tables, PNG plots, and the plan printed by --ablate-plan. Nothing here launches anything.
"""
