"""The pytest adapter, wired together by plugin.py: options (`--ablate-*`), the run's state in `config.stash`,
the matrix file collected as a test module (`collect`, `builtin_tests`), the fixtures, and the recorder that
hands finished cases to the results. The only code that speaks pytest; the stages below it compute.
"""
