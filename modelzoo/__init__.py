"""reid-modelzoo: torchreid's person re-ID model zoo, verified, in one line."""

__version__ = "0.1.0"
