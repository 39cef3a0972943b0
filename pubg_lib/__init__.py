"""PUBG compendium library."""
