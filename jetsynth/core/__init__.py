"""The genetics of evolutionary synthesis: genomes, encoding, mating, selection."""
