"""Bytes both sides agree on: APDUs and status words, BER-TLV, ATRs, command names and secret redaction.

DESIGN.md rule 1: nothing here imports anything else of ours (checked by import-linter), so the device
layer, the virtual card and the harness can all use it without a circle.
"""
