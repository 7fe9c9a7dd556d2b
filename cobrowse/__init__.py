"""cobrowse: self-hosted co-browsing and live support."""

__version__ = "0.1.0"
