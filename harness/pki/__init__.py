"""The PKI a relying party and the suites need, split by job (JPKI-FACTS §4, §6).

- :mod:`.checks` — load certificates, CRLs and keys; signature and chain checks (``PkiError``).
- :mod:`.revocation` — CRL and OCSP (client side: build a request, check a response).
- :mod:`.profile` — the JPKI certificate profile: holder attributes, the auth identifier, profile problems.
- :mod:`.testpki` — the committed test hierarchy in ``fixtures/pki`` (``load_test_pki``).
- :mod:`.generate` and :mod:`.detrsa` — rebuild that hierarchy deterministically (``hil pki generate``).

The OCSP responder that answers for the test CAs is :mod:`harness.relying_party.ocsp`.
"""
