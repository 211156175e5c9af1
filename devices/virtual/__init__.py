"""Virtual devices: the card OS, applets and profiles, and the bridges that put them behind real stacks."""
