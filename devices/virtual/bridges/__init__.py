"""Bridges that put a virtual card behind a real stack: :mod:`.nfc` on nfcpy's UDP link (its PICC in
:mod:`.iso_dep_picc`)."""
