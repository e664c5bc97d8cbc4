"""The simulated population: one module per kind of user (all import Locust)."""
