"""Kiosks and set-top boxes: host software around a reader — a keypad (or remote), a display and the service flows.

They were ``devices/terminal.py``; they are harness, not a device: the terminal software of the planning
document, run over the terminal's reader with :class:`~harness.jpki.JpkiClient` and over HTTP with the
relying party. :mod:`.ui` holds the keypad, display and screens; :mod:`.terminal` the steps every flow
shares; :mod:`.flows` the set-top box and kiosk flows and :func:`~harness.terminals.flows.open_terminal`.

- set-top box (CATV): login with the auth certificate (platform ID), facility booking, health records,
  elderly-watch (見守り) check-in;
- kiosk: certificate issuance at a convenience store (text-AP basic four after the text PIN), hospital
  reception (insurance eligibility by the auth certificate serial, payment), shelter check-in/out.

Rules every flow keeps: every PIN goes through the harness's PIN guard (``terminal.guard``); one VERIFY per
PIN the person typed — a wrong PIN ends the flow and the display
shows the tries left, the terminal never retries on its own; a card removed mid-flow aborts the
open transaction at the relying party; PINs live in :class:`~harness.terminals.ui.SecretPin` and never
reach a log, a display or an exception.
"""
