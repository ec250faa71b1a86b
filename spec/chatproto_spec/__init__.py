"""What the spec derives from the protocol code, and the spec's requirement list.

``chatproto`` is the protocol and nothing else; this package reads and writes
the spec pages around it: the requirement list the conformance kit cites
(``requirements``), the generated blocks of the pages (``_specdoc``), the test
vectors (``_vectors``), the state diagram (``_statediagram``) and the command
that regenerates them all (``python -m chatproto_spec.specgen``). It imports
``chatproto``; ``chatproto`` never imports it. Nothing is imported here, so
``chatproto_spec.requirements`` stays cheap for the kit.
"""
