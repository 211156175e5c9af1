*** Settings ***
Documentation       The smartphone JPKI applet (JPKI-FACTS §8). Requirements the phone shares with the card
...                 keep the card's ID; those where it differs have ``PHN-…`` IDs.
