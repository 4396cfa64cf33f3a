"""Summarise an Autobahn|Testsuite fuzzingclient report (reports/index.json).

    python summarize.py [reports/index.json] [LABEL]

Prints one line `autobahn[LABEL]: N cases, OK a, NON-STRICT b, FAILED c, UNCLEAN d,
INFORMATIONAL e` (`autobahn:` without a label; + UNIMPLEMENTED when present) and lists every
case that is not acceptable. Exit status 1 when any case is not OK/INFORMATIONAL/UNIMPLEMENTED
(the behaviour or the close behaviour).
"""
import json
import sys
from collections import Counter

ACCEPTABLE = {"OK", "INFORMATIONAL", "UNIMPLEMENTED"}


def case_key(case_id):
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def main(path, label=""):
    with open(path) as f:
        index = json.load(f)
    counts = Counter()
    bad = []
    for agent, cases in index.items():
        for case_id in sorted(cases, key=case_key):
            res = cases[case_id]
            behavior = res.get("behavior", "?")
            close = res.get("behaviorClose", "OK")
            verdict = behavior if behavior != "OK" else (close if close in ACCEPTABLE else close)
            if behavior == "OK" and close not in ACCEPTABLE:
                verdict = "UNCLEAN" if close == "UNCLEAN" else "FAILED"
            counts[verdict] += 1
            if verdict not in ACCEPTABLE:
                bad.append("  %s %s: behavior %s, close %s" % (agent, case_id, behavior, close))
    total = sum(counts.values())
    line = ("autobahn%s: %d cases, OK %d, NON-STRICT %d, FAILED %d, UNCLEAN %d, INFORMATIONAL %d"
            % ("[%s]" % label if label else "", total, counts["OK"], counts["NON-STRICT"],
               counts["FAILED"], counts["UNCLEAN"], counts["INFORMATIONAL"]))
    if counts["UNIMPLEMENTED"]:
        line += ", UNIMPLEMENTED %d" % counts["UNIMPLEMENTED"]
    other = set(counts) - {"OK", "NON-STRICT", "FAILED", "UNCLEAN", "INFORMATIONAL",
                           "UNIMPLEMENTED"}
    for name in sorted(other):
        line += ", %s %d" % (name, counts[name])
    print(line)
    for row in bad:
        print(row)
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tests/.autobahn/reports/index.json",
                  sys.argv[2] if len(sys.argv) > 2 else ""))
