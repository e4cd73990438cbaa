"""A tiny offline imitation of the Hugging Face Hub, for tests.

Serves just what ``huggingface_hub.hf_hub_download`` (2.4.0) needs over plain HTTP, so
the real client runs against ``HF_ENDPOINT=http://127.0.0.1:PORT`` (or ``endpoint=``)
without Internet access::

    with FakeHub() as hub:
        sha = hub.add_file("owner/model", "weights/g.pkl", b"...")
        path = hf_hub_download("owner/model", "weights/g.pkl", endpoint=hub.url)

Protocol facts matched (see huggingface_hub/file_download.py and utils/_http.py):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}`` (``datasets/``/``spaces/``
  prefix for other repo types). The revision is URL-quoted with ``safe=""``.
  A 200 carries ``X-Repo-Commit`` (required, else FileMetadataError), ``ETag``
  (required; quoted sha256 of the content, i.e. an LFS-style etag that becomes the
  blob name), ``Content-Length`` (the expected size) and ``Accept-Ranges: bytes``.
  Files are served directly (no redirect), so no ``X-Linked-Etag``/``X-Linked-Size``
  are needed, and no ``X-Xet-*`` header is ever sent (plain HTTP download).
* ``Range: bytes=N-`` (or ``N-M``) -> 206 with ``Content-Range``: the client resumes
  in-process after a dropped connection (httpx RemoteProtocolError).
* Errors are mapped by ``hf_raise_for_status`` from the ``X-Error-Code`` header:
  unknown repo -> 404 ``RepoNotFound`` (RepositoryNotFoundError); unknown revision ->
  404 ``RevisionNotFound`` (RevisionNotFoundError); missing file -> 404
  ``EntryNotFound`` (RemoteEntryNotFoundError, an EntryNotFoundError) with
  ``X-Repo-Commit`` so the client can cache the non-existence like on the real Hub.
  Private repo without a token -> 401 ``GatedRepo`` (GatedRepoError, status 401);
  with a wrong token -> 401 "Invalid credentials in Authorization header" and no
  code (plain HfHubHTTPError 401). The 401-means-RepoNotFound rule of
  ``hf_raise_for_status`` only applies to https URLs, hence the explicit codes.
* ``GET /api/{models|datasets|spaces}/{repo_id}[/revision/{revision}]`` -> JSON
  ``{"id", "sha", "siblings": [{"rfilename"}]}``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_TYPE = {"": "model", "models": "model", "datasets": "dataset", "spaces": "space"}
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)$")
_API = re.compile(r"^/api/(models|datasets|spaces)/(.+?)(?:/revision/([^/]+))?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Repo:
    def __init__(self):
        self.branches: dict[str, str] = {}  # branch name -> commit sha
        self.commits: dict[str, dict[str, bytes]] = {}  # commit sha -> {path: data}


class FakeHub:
    """In-memory repos served by a ThreadingHTTPServer on 127.0.0.1 (free port)."""

    def __init__(self):
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._tokens: dict[str, str] = {}  # private repo_id -> required token
        self._drops: dict[tuple[str, str], int] = {}  # (repo_id, path) -> bytes before cut
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.url = ""

    # -- content -----------------------------------------------------------------
    def add_file(self, repo_id: str, path: str, data: bytes, revision: str = "main",
                 commit: str | None = None, repo_type: str = "model") -> str:
        """Serve `data` at repo_id/path for `revision` (a branch name); returns the
        40-hex commit sha used (generated deterministically if None).

        Like a git commit, the new tree is the branch's previous tree plus this file;
        older commits stay resolvable by sha."""
        with self._lock:
            repo = self._repos.setdefault((repo_type, repo_id), _Repo())
            tree = dict(repo.commits.get(repo.branches.get(revision, ""), {}))
            tree[path] = bytes(data)
            if commit is None:
                listing = sorted((p, hashlib.sha256(d).hexdigest()) for p, d in tree.items())
                seed = json.dumps([repo_type, repo_id, revision, listing])
                commit = hashlib.sha1(seed.encode()).hexdigest()
            assert re.fullmatch(r"[0-9a-f]{40}", commit), f"not a 40-hex sha: {commit!r}"
            repo.commits[commit] = tree
            repo.branches[revision] = commit
            return commit

    def set_private(self, repo_id: str, token: str) -> None:
        """Require ``Authorization: Bearer <token>`` for `repo_id` (any repo type; may be
        called before or after its files are added)."""
        with self._lock:
            self._tokens[repo_id] = token

    def drop_connection_once(self, repo_id: str, path: str, after_bytes: int) -> None:
        """The next GET of that file sends full headers but closes after `after_bytes` bytes."""
        with self._lock:
            self._drops[(repo_id, path)] = after_bytes

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "FakeHub":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        server = self._server  # short poll interval => stop() returns quickly
        threading.Thread(target=lambda: server.serve_forever(0.05), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every reply has a length
    timeout = 30  # idle keep-alive sockets do not linger forever

    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, headers: dict | None = None, body: bytes = b"", length=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, extra: dict | None = None):
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._reply(status, headers, json.dumps({"error": message}).encode())

    def _lookup(self, repo_type: str, repo_id: str, revision: str):
        """(repo, commit) or None after replying with the Hub's error for it."""
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        with hub._lock:
            repo = hub._repos.get((repo_type, repo_id))
            commit = repo and repo.branches.get(revision, revision if revision in repo.commits else None)
            token = hub._tokens.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if token is not None:
            auth = self.headers.get("Authorization")
            if auth is None:
                return self._error(401, "GatedRepo", "Access to this repo is restricted; log in.")
            if auth != f"Bearer {token}":
                return self._error(401, None, "Invalid credentials in Authorization header")
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, commit

    def _handle(self):
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        with hub._lock:
            hub.requests.append((self.command, self.path, dict(self.headers.items())))
        path = urlsplit(self.path).path
        if m := _API.match(path):
            if self.command != "GET":
                return self._error(405, None, "Method not allowed")
            kind, repo_id, rev = _TYPE[m[1]], unquote(m[2]), unquote(m[3] or "main")
            if (found := self._lookup(kind, repo_id, rev)) is None:
                return
            repo, commit = found
            info = {"id": repo_id, "sha": commit,
                    "siblings": [{"rfilename": p} for p in sorted(repo.commits[commit])]}
            return self._reply(200, {"Content-Type": "application/json"}, json.dumps(info).encode())
        if not (m := _RESOLVE.match(path)):
            return self._error(404, None, "Not found")
        kind, repo_id, rev, fpath = _TYPE[m[1] or ""], m[2], unquote(m[3]), unquote(m[4])
        if (found := self._lookup(kind, repo_id, rev)) is None:
            return
        repo, commit = found
        data = repo.commits[commit].get(fpath)
        if data is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        status, body = 200, data
        if (rng := _RANGE.match(self.headers.get("Range", ""))) is not None:
            start = int(rng[1])
            end = min(int(rng[2]) if rng[2] else len(data) - 1, len(data) - 1)
            if start >= len(data) or start > end:
                return self._reply(416, {"Content-Range": f"bytes */{len(data)}"})
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        cut = None
        if self.command == "GET":
            with hub._lock:
                cut = hub._drops.pop((repo_id, fpath), None)
        if cut is None:
            return self._reply(status, headers, body)
        # Announce the full length, send `cut` bytes, then kill the socket mid-body.
        self._reply(status, headers, body[:cut], length=len(body))
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_HEAD = _handle
