"""Sequences: YAML definitions, versions, triggers and the enrollment state machine.

Public API (import from the submodules):

- schema: parse_sequence_file / parse_sequence_text / parse_sequence -> SequenceDefinition,
  SequenceError (file:line: problem. Fix: ...); the model is in steps, the validation in
  parse_common (helpers, trigger, exits) and parse_steps (one parser per step kind)
- store: apply_definition, plan_definition, pause_sequence, resume_sequence,
  list_sequences, load_version, SequenceNotFound
- triggers: enroll_from_event, enroll_contact, reentry_allows
- engine: advance_enrollment(session, enrollment_id, now)
- exits: exit_on_event, wake_waiting
- handlers: the process_event handlers (imported by automation.runtime.handlers)
"""
