"""Segment rules: the rule tree (nodes), parse + validate (rules), compile to SQL (compile),
evaluate one contact (evaluate), RFM thresholds (rfm), memberships and transitions
(membership), definitions (store). Handlers live in automation.segments.handlers
(imported by automation.runtime.handlers).
"""

from automation.segments.compile import compile_rule
from automation.segments.evaluate import matches
from automation.segments.membership import (
    evaluate_contact,
    in_segment,
    refresh_all,
    refresh_segment,
    refresh_time_based_segments,
)
from automation.segments.nodes import Rule, RuleError, SegmentDef
from automation.segments.rules import (
    load_rule,
    load_segment_file,
    load_segment_text,
    parse_segment,
)
from automation.segments.store import apply_segments, dependency_order, validate_definitions

__all__ = [
    "Rule",
    "RuleError",
    "SegmentDef",
    "apply_segments",
    "compile_rule",
    "dependency_order",
    "evaluate_contact",
    "in_segment",
    "load_rule",
    "load_segment_file",
    "load_segment_text",
    "matches",
    "parse_segment",
    "refresh_all",
    "refresh_segment",
    "refresh_time_based_segments",
    "validate_definitions",
]
