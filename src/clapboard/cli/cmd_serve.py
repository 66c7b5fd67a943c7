"""``clapboard serve``: the review web UI and JSON API (needs ``clapboard[web]``).

Safe by default: it binds loopback, and binding any other address is refused unless
a token is given, because the UI can conform versions and lock scenes — anyone who
can reach the port could otherwise do that.
"""

from __future__ import annotations

import socket
from pathlib import Path

import click
import uvicorn

from clapboard.cli.common import example, fail, get_store, global_options, note
from clapboard.cli.group import cli
from clapboard.web import create_app
from clapboard.web.app import default_media_root
from clapboard.web.security import is_loopback_name

MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (the only names that stay on this machine).

    The same test the server's Host check applies, so whatever binds without a token
    also answers its own address."""
    return is_loopback_name(host)


def free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        port: int = s.getsockname()[1]
        return port


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback requires --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--token", envvar="CLAPBOARD_TOKEN", default=None, metavar="TOKEN",
              help="Shared secret every request must present (Authorization: Bearer, or "
                   "open the printed URL once). Also read from CLAPBOARD_TOKEN.")
@click.option("--media-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding one folder per project with its media. Default for a "
                   "folder store: <root>/projects. Required to see media with PostgreSQL.")
@global_options
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, token: str | None,
              media_root: Path | None) -> None:
    """Serve the review UI and the JSON API over the store.

    Operators browse projects → episodes → scenes, look at boards and takes, approve
    or reject boards, pick primary takes, lock scenes and conform / revert versions.
    Every write goes through the same guarded writers as the CLI. The JSON API lives
    under /api (OpenAPI description at /openapi.json).
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        fail(f"--token / CLAPBOARD_TOKEN is too short ({len(token)} characters, need "
             f"{MIN_TOKEN_LENGTH}+); make one with: python -c \"import secrets; "
             "print(secrets.token_urlsafe(24))\"")
    if not is_loopback(host) and token is None:
        fail(f"refusing to bind {host}: off loopback the store would be open to the network; "
             "give --token TOKEN or set CLAPBOARD_TOKEN")
    store = get_store(ctx)
    root = media_root if media_root is not None else default_media_root(store)
    if root is None:
        note("clapboard: no --media-root for this store; frames and takes show as "
             "placeholders")
    if port == 0:
        port = free_port(host)
    app = create_app(store, token=token, media_root=root)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    note(f"clapboard: serving {store.backend.location} at {url}  (Ctrl-C to stop)")
    config = uvicorn.Config(app, host=host.strip("[]"), port=port, log_level="warning",
                            server_header=False, proxy_headers=False, access_log=False)
    uvicorn.Server(config).run()


serve_cmd.help = (serve_cmd.help or "") + example("""
clapboard serve --root ./clapboard-data
clapboard serve --port 8080
CLAPBOARD_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(24))') \\
    clapboard serve --host 0.0.0.0
clapboard serve --store postgresql://db/clap --media-root /mnt/show/projects
""")
