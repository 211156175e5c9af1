*** Settings ***
Documentation       Long runs for labs: a million APDUs in one keyword, in bounded memory (``Repeat Exchange``).
...                 Not part of the main job or of ``hil run`` without suites: run it by name, ``hil run soak``.
