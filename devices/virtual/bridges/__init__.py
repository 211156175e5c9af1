"""Bridges that put a virtual card behind a real stack: :mod:`.pcsc` behind pcscd + vpcd (the card server
:mod:`.vpcd`, its wire format :mod:`.vpcd_wire`, slots and parking :mod:`.vpcd_sessions`, T=0 shaping
:mod:`.t0`) and :mod:`.nfc` on nfcpy's UDP link (its PICC in :mod:`.iso_dep_picc`)."""
