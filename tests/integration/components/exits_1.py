"""Exits with code 1 as soon as it runs: a program that failed by itself."""
import sys

sys.exit(1)
