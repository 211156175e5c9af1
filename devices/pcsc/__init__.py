"""PC/SC readers through pcscd (``pcsc:``): :mod:`.reader` the reader and its URI, :mod:`.names` which
reader a name means, :mod:`.scard` contexts and typed errors, :mod:`.capabilities` what it carries."""
