"""The assertion helper of the analyzer's test scripts: every check counts, a failed one is printed and
remembered, and the script exits 1 at the end when any failed."""

FAILURES, CHECKS = [], [0]

def check(cond, what):
    CHECKS[0] += 1
    if not cond:
        FAILURES.append(what)
        print('FAIL', what)
