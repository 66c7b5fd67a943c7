"""The review web UI and JSON API (``clapboard serve``); needs ``clapboard[web]``."""

from clapboard.web.app import create_app

__all__ = ["create_app"]
