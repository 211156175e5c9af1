"""nfcpy readers (``nfc:``): :mod:`.reader` the reader, :mod:`.uri` device names, :mod:`.usb` the USB scan and
its errors, :mod:`.activation` Type B activation at a bit rate, :mod:`.iso14443` the shared frame facts."""
