"""JUnit XML, valid against the common ``junit-10.xsd``: one ``<testsuite>`` per identity
file, one ``<testcase>`` per identity.

A failed identity (or one that passed against ``expect: fail``) is a ``<failure>``, one that
could not be checked an ``<error>``; an expected failure passes, with its status in
``<system-out>``. The XML is built with ElementTree, so markup in user text is escaped; what
XML 1.0 cannot hold, and lines a CI log would run, are handled by :mod:`matgrad.report.escape`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from matgrad.report.escape import xml, xml_document
from matgrad.report.formula import claim_text
from matgrad.report.text import failure_message, identity_lines, total_draws
from matgrad.results import IdentityResult, RunReport
from matgrad.settings import Settings


def seconds(x: float) -> str:
    """A time with at most 3 decimals, as the schema's SUREFIRE_TIME wants."""
    return f"{max(x, 0.0):.3f}"


def classname(file: str) -> str:
    """``identities/cookbook/norms.yaml`` -> ``identities.cookbook.norms``."""
    name = file.replace("\\", "/")
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return ".".join(p for p in name.split("/") if p not in ("", "."))


def _by_file(results: Iterable[IdentityResult]) -> dict[str, list[IdentityResult]]:
    files: dict[str, list[IdentityResult]] = {}
    for r in results:
        files.setdefault(r.file, []).append(r)
    return files


def _properties(report: RunReport) -> ET.Element:
    props = ET.Element("properties")
    pairs = [
        ("matgrad", report.matgrad),
        ("torch", report.torch or ""),
        ("device", report.device),
        ("dtype", report.dtype),
        ("seed", str(report.seed)),
        ("draws", str(total_draws(report))),
    ]
    if report.shard:
        pairs.append(("shard", report.shard))
    if report.stopped:
        pairs.append(("stopped", report.stopped))
    for warning in report.warnings:
        pairs.append(("warning", warning))
    if not report.complete:
        pairs.append(("complete", "false"))
    for name, value in pairs:
        ET.SubElement(props, "property", name=name, value=xml(value))
    return props


def _testcase(r: IdentityResult, settings: Settings) -> ET.Element:
    case = ET.Element(
        "testcase", name=xml(r.id), classname=xml(classname(r.file)), time=seconds(r.seconds)
    )
    body = "\n".join(identity_lines(r, settings))
    claimed = "\n".join(formulas(r))
    if r.status in ("failed", "xpassed"):
        kind = "mismatch" if r.status == "failed" else "unexpected-pass"
        el = ET.SubElement(case, "failure", message=xml(failure_message(r)), type=kind)
        el.text = xml(body)
    elif r.status == "error":
        kind = "internal-error" if r.internal else "invalid"
        el = ET.SubElement(case, "error", message=xml(failure_message(r)), type=kind)
        el.text = xml(body)
    else:
        text = "\n".join(t for t in (r.status, body, claimed) if t)
        ET.SubElement(case, "system-out").text = xml(text)
        return case
    if claimed:  # what was claimed, next to the failure
        ET.SubElement(case, "system-out").text = xml(claimed)
    return case


def formulas(r: IdentityResult) -> list[str]:
    """``f = ...`` and each claim as text (``∂f/∂X = ...``), as written in the file."""
    lines = [f"f = {r.f}"] if r.f else []
    lines += [claim_text(c.kind, c.var, c.expr) for c in r.claims if c.expr]
    return lines


def render(report: RunReport) -> str:
    root = ET.Element("testsuites", name="matgrad")
    total = failures = errors = 0
    total_time = 0.0
    for file, results in _by_file(report.results).items():
        n_fail = sum(r.status in ("failed", "xpassed") for r in results)
        n_err = sum(r.status == "error" for r in results)
        time = sum(r.seconds for r in results)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=xml(file),
            tests=str(len(results)),
            failures=str(n_fail),
            errors=str(n_err),
            skipped="0",
            time=seconds(time),
            file=xml(file),
        )
        suite.append(_properties(report))
        for r in results:
            suite.append(_testcase(r, report.settings))
        total += len(results)
        failures += n_fail
        errors += n_err
        total_time += time
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", seconds(report.seconds or total_time))
    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode")
    return xml_document('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
