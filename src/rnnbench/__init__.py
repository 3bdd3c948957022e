"""rnnbench: how fast does each framework train the same GRU/LSTM on this machine?"""

__version__ = "0.1.0"
