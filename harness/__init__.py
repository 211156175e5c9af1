"""What is true whatever the hardware: APDUs, TLV, the JPKI client, PKI checks, safety and traces."""
