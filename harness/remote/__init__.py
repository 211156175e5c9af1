"""Reader hosts: ``hil remote serve`` on the machine with the reader, ``remote:`` devices on the controller.

``wire`` is what both sides agree on (how a PIN target and an exchange travel), ``server`` the reader
host (it alone knows the PINs and runs the PIN guard), ``guard`` the controller's stand-in for the guard.
"""
