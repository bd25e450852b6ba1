"""The seed documents' endpoints: thin adapters over the OAuth server and services."""
