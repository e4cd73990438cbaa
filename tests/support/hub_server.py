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

Pushing, for ``HfApi(endpoint=hub.url).create_repo / upload_file / upload_folder /
create_commit`` (see hf_api.py, _commit_api.py, _upload_pipeline.py)::

    with FakeHub(write_token="hf_w") as hub:
        api = HfApi(endpoint=hub.url, token="hf_w")
        api.create_repo("me/m", exist_ok=True); api.upload_folder(repo_id="me/m", folder_path=d)
        assert hub.files("me/m") == {"README.md": b"...", ...}

* ``POST /api/repos/create`` JSON ``{"name", "organization", "type"?, "visibility"?}`` ->
  ``{"url"}``; 409 if it exists (``exist_ok=True`` swallows it). A new repo has one
  empty commit on ``main`` (no ``.gitattributes``). ``visibility: "private"`` makes
  the repo private with the request's bearer token as its read token (none: public).
* ``POST /api/validate-yaml`` (README.md check) -> ``{"errors": [], "warnings": []}``.
* ``POST /api/{type}s/{repo_id}/preupload/{revision}`` JSON ``{"files": [{"path",
  "sample", "size"}]}`` -> ``{"files": [{"path", "uploadMode": "regular",
  "shouldIgnore": false, "oid"?}]}``. Always "regular", whatever the size: the
  client (2.4.0) accepts it for any file and then sends the content base64 inline in
  the commit. Never "lfs": with hf_xet installed the client sends every "lfs" file
  through Xet, unconditionally (no server opt-in), which cannot work offline; so no
  LFS batch endpoint exists here. ``oid`` (git blob sha1) is given for paths that
  already exist at that revision, so unchanged files are skipped client-side.
* ``POST /api/{type}s/{repo_id}/commit/{revision}`` NDJSON (``application/x-ndjson``),
  one ``{"key", "value"}`` per line: ``header`` ``{"summary", "description",
  "parentCommit"?}``, ``file`` ``{"path", "content", "encoding": "base64"}``,
  ``deletedFile``/``deletedFolder`` ``{"path"}``. -> ``{"success", "commitOid",
  "commitUrl", "hookOutput"}``; the branch moves to a new commit (tree = parent's tree
  with the changes), which resolve then serves. The branch must exist (else 404
  RevisionNotFound); stale ``parentCommit`` -> 412; ``lfsFile`` lines and
  ``create_pr=1`` -> 400 (not supported).
* Write auth: ``FakeHub(write_token=T)`` (or set ``hub.write_token``) makes the three
  write endpoints above answer 401 without ``Authorization: Bearer T`` (no error code:
  the client raises a plain HfHubHTTPError 401 carrying the message). With the default
  ``None`` anyone may write. Private repos still also need their read token.
* Not imitated: the tree listing (``list_repo_files``, hence ``upload_folder(
  delete_patterns=...)``), pull requests, LFS/Xet storage, ``gitIgnore`` rules.
"""

from __future__ import annotations

import base64
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
_WRITE = re.compile(r"^/api/(models|datasets|spaces)/(.+?)/(preupload|commit)/([^/]+)$")


def _git_oid(data: bytes) -> str:  # what `git hash-object` (and the client's _local_oid) gives
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    def __init__(self):
        self.branches: dict[str, str] = {}  # branch name -> commit sha
        self.commits: dict[str, dict[str, bytes]] = {}  # commit sha -> {path: data}


class FakeHub:
    """In-memory repos served by a ThreadingHTTPServer on 127.0.0.1 (free port)."""

    def __init__(self, write_token: str | None = None):
        self.write_token = write_token  # if set, create/preupload/commit need this bearer token
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._tokens: dict[str, str] = {}  # private repo_id -> required token
        self._drops: dict[tuple[str, str], int] = {}  # (repo_id, path) -> bytes before cut
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.url = ""

    # -- content -----------------------------------------------------------------
    def add_file(
        self,
        repo_id: str,
        path: str,
        data: bytes,
        revision: str = "main",
        commit: str | None = None,
        repo_type: str = "model",
    ) -> str:
        """Serve `data` at repo_id/path for `revision` (a branch name); returns the
        40-hex commit sha used (generated deterministically if None).

        Like a git commit, the new tree is the branch's previous tree plus this file;
        older commits stay resolvable by sha."""
        with self._lock:
            repo = self._repos.setdefault((repo_type, repo_id), _Repo())
            tree = dict(repo.commits.get(repo.branches.get(revision, ""), {}))
            tree[path] = bytes(data)
            return self._commit(repo_type, repo_id, revision, tree, commit)

    def _commit(
        self,
        repo_type: str,
        repo_id: str,
        revision: str,
        tree: dict[str, bytes],
        commit: str | None = None,
        extra: tuple = (),
    ) -> str:
        """Store `tree` as a new commit and move branch `revision` to it (lock held).
        The sha hashes the tree (plus `extra`: parent and message for pushes)."""
        if commit is None:
            listing = sorted((p, hashlib.sha256(d).hexdigest()) for p, d in tree.items())
            seed = json.dumps([repo_type, repo_id, revision, listing, *extra])
            commit = hashlib.sha1(seed.encode()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{40}", commit), f"not a 40-hex sha: {commit!r}"
        repo = self._repos.setdefault((repo_type, repo_id), _Repo())
        repo.commits[commit] = tree
        repo.branches[revision] = commit
        return commit

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """The repo's files {path: bytes} at `revision` (branch or commit sha); KeyError if none."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return dict(repo.commits[repo.branches.get(revision, revision)])

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        """The commit sha branch `revision` points to (what X-Repo-Commit reports)."""
        with self._lock:
            return self._repos[(repo_type, repo_id)].branches[revision]

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
    def start(self) -> FakeHub:
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

    def __enter__(self) -> FakeHub:
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

    def _json(self, status: int, obj) -> None:
        self._reply(status, {"Content-Type": "application/json"}, json.dumps(obj).encode())

    def _body(self) -> bytes:
        """The whole request body (Content-Length or chunked); always read, so that an
        early error reply keeps the keep-alive connection in sync."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(parts)

    def _may_write(self) -> bool:
        """True, or False after a 401 when FakeHub.write_token is set and not presented."""
        token = self.server.hub.write_token  # type: ignore[attr-defined]
        auth = self.headers.get("Authorization")
        if token is None or auth == f"Bearer {token}":
            return True
        self._error(
            401,
            None,
            "Invalid credentials in Authorization header"
            if auth
            else "Write access requires an Authorization header with a write token",
        )
        return False

    def _create_repo(self, body: bytes):
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        try:
            req = json.loads(body)
            kind, name = req.get("type") or "model", req["name"]
            url_prefix = _PREFIX[kind]
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._error(400, None, "Invalid repo creation payload")
        repo_id = f"{req['organization']}/{name}" if req.get("organization") else name
        url = f"{hub.url}/{url_prefix}{repo_id}"
        auth = self.headers.get("Authorization", "")
        with hub._lock:
            exists = (kind, repo_id) in hub._repos
            if not exists:
                hub._commit(kind, repo_id, "main", {})  # the repo's first (empty) commit
                if req.get("visibility") == "private" and auth.startswith("Bearer "):
                    hub._tokens[repo_id] = auth[len("Bearer ") :]
        if exists:
            message = f"You already created this {kind} repo"
            return self._reply(
                409,
                {"Content-Type": "application/json", "X-Error-Message": message},
                json.dumps({"error": message, "url": url}).encode(),
            )
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, kind: str, repo_id: str, rev: str, body: bytes, query: str):
        if (found := self._lookup(kind, repo_id, rev)) is None:
            return
        tree = found[0].commits[found[1]]  # trees are never mutated once stored
        try:
            paths = [f["path"] for f in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            return self._error(400, None, "Invalid preupload payload")
        files = [
            {
                "path": p,
                "uploadMode": "regular",
                "shouldIgnore": False,
                **({"oid": _git_oid(tree[p])} if p in tree else {}),
            }
            for p in paths
        ]
        return self._json(200, {"files": files, "commitOid": found[1]})

    def _push(self, kind: str, repo_id: str, rev: str, body: bytes, query: str):
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        if "create_pr=1" in query:
            return self._error(400, None, "FakeHub does not support create_pr")
        if (found := self._lookup(kind, repo_id, rev)) is None:
            return
        repo = found[0]
        if rev not in repo.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev} is not a branch")
        header, changes = {}, []
        try:
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    enc, content = value.get("encoding", "base64"), value["content"]
                    data = base64.b64decode(content, validate=True) if enc == "base64" else content.encode()
                    changes.append((key, value["path"], data))
                elif key in ("deletedFile", "deletedFolder"):
                    changes.append((key, value["path"], None))
                else:  # lfsFile: preupload never answers "lfs", so no LFS objects exist here
                    return self._error(400, None, f"FakeHub does not support commit operation {key!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return self._error(400, None, f"Invalid commit payload: {e}")
        error = None
        with hub._lock:
            parent = repo.branches[rev]
            tree = dict(repo.commits[parent])
            if header.get("parentCommit") and not parent.startswith(header["parentCommit"]):
                error = (412, None, "A commit has happened since. Please refresh and try again.")
            for op, path, data in changes:
                if op == "file":
                    tree[path] = data
                elif op == "deletedFile" and tree.pop(path, None) is None:
                    error = error or (404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                elif op == "deletedFolder":
                    for p in [p for p in tree if p.startswith(path.rstrip("/") + "/")]:
                        del tree[p]
            if error is None:
                sha = hub._commit(
                    kind, repo_id, rev, tree, extra=(parent, header.get("summary"), header.get("description"))
                )
        if error is not None:
            return self._error(*error)
        return self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "hookOutput": "",
                "commitUrl": f"{hub.url}/{_PREFIX[kind]}{repo_id}/commit/{sha}",
            },
        )

    def _handle(self):
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        with hub._lock:
            hub.requests.append((self.command, self.path, dict(self.headers.items())))
        url = urlsplit(self.path)
        path = url.path
        if self.command == "POST":
            body = self._body()
            if path == "/api/validate-yaml":  # README.md metadata check: always fine
                return self._json(200, {"errors": [], "warnings": []})
            if not (path == "/api/repos/create" or (m := _WRITE.match(path))):
                return self._error(404, None, "Not found")
            if not self._may_write():
                return
            if path == "/api/repos/create":
                return self._create_repo(body)
            handler = self._preupload if m[3] == "preupload" else self._push
            return handler(_TYPE[m[1]], unquote(m[2]), unquote(m[4]), body, url.query)
        if m := _API.match(path):
            if self.command != "GET":
                return self._error(405, None, "Method not allowed")
            kind, repo_id, rev = _TYPE[m[1]], unquote(m[2]), unquote(m[3] or "main")
            if (found := self._lookup(kind, repo_id, rev)) is None:
                return
            repo, commit = found
            info = {"id": repo_id, "sha": commit, "siblings": [{"rfilename": p} for p in sorted(repo.commits[commit])]}
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
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status, body = 200, data
        if (rng := _RANGE.match(self.headers.get("Range", ""))) is not None:
            start = int(rng[1])
            end = min(int(rng[2]) if rng[2] else len(data) - 1, len(data) - 1)
            if start >= len(data) or start > end:
                return self._reply(416, {"Content-Range": f"bytes */{len(data)}"})
            status, body = 206, data[start : end + 1]
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

    do_GET = do_HEAD = do_POST = _handle
