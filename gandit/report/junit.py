"""JUnit XML for CI dashboards: one test case per rule check and one per flagged image."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def _case(suite: ET.Element, classname: str, name: str, failure: str | None, skipped: str | None = None,
          body: str = "") -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if failure is not None:
        el = ET.SubElement(case, "failure", message=failure, type="gandit")
        el.text = body or failure
    elif skipped is not None:
        ET.SubElement(case, "skipped", message=skipped)


def result_to_junit(result: dict[str, Any]) -> str:
    """JUnit XML of a ``gandit.audit/1`` result dict. A ``warn`` check is a skipped case with
    its message (dashboards show it, the run stays green); a failed check or a flagged,
    unwaived image is a failure whose text carries the evidence."""
    checks = result["checks"]
    flagged = [i for i in result["images"] if i["flagged"]]
    root = ET.Element("testsuites", name="gandit audit")
    rules = ET.SubElement(root, "testsuite", name="rules", tests=str(len(checks)),
                          failures=str(sum(c["status"] == "fail" for c in checks)),
                          skipped=str(sum(c["status"] == "warn" for c in checks)))
    for c in checks:
        body = c["message"] + ("\n" + "\n".join(c["entries"]) if c["entries"] else "")
        _case(rules, "gandit.checks", c["id"], c["message"] if c["status"] == "fail" else None,
              c["message"] if c["status"] == "warn" else None, body)
    images = ET.SubElement(root, "testsuite", name="forensics", tests=str(len(flagged)),
                           failures=str(sum(not i["waived"] for i in flagged)),
                           skipped=str(sum(i["waived"] for i in flagged)))
    for i in flagged:
        evidence = "; ".join(
            f"{m['train']} (similarity {m['similarity']}" + (f", box {m['box']}" if m["box"] else "")
            + (", mirrored" if m["flip"] else "") + (f", weight {m['weight']}" if m["weight"] is not None else "") + ")"
            for m in i["matches"])
        message = f"{i['kind']} of training data, score {i['score']}: {evidence}"
        _case(images, "gandit.images", i["name"], None if i["waived"] else message,
              f"waived: {i.get('waiver_reason') or ''}" if i["waived"] else None, message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
