"""RSC15 fetch for real, against a local HTTP server on 127.0.0.1 serving a tiny 7z archive."""
import http.server
import threading

import py7zr
import pytest

from gru4rec_repro.data.errors import DataError
from gru4rec_repro.data.rsc15 import fetch

ROWS = [f"{s},2014-04-0{1 + s % 5}T10:51:0{s % 10}.277Z,2145365{s % 7:02d},0" for s in range(1, 400)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src")
    clicks = folder / "yoochoose-clicks.dat"
    clicks.write_text("\n".join(ROWS) + "\n")
    (folder / "dataset-README.txt").write_text("tiny test archive\n" * 50)
    path = folder / "yoochoose-data.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.write(clicks, arcname="yoochoose-clicks.dat")
        z.write(folder / "dataset-README.txt", arcname="dataset-README.txt")
    return path


class Server:
    """Serves one file; ``cut_first`` makes the first GET stop half way and drop the connection."""

    def __init__(self, payload: bytes, cut_first: bool = False, honour_range: bool = True):
        self.payload, self.cut_first, self.honour_range = payload, cut_first, honour_range
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                data, start = server.payload, 0
                if rng and server.honour_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_first and len(server.requests) == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/yoochoose-data.7z"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch_from(server, tmp_path, **kw):
    kw.setdefault("expected_rows", len(ROWS))
    return fetch(tmp_path / "out" / "yoochoose-clicks.dat", url=server.url, progress=False,
                 backoff=0.0, download_dir=tmp_path / "dl", **kw)


def test_download_extract_and_count_rows(archive, tmp_path):
    with Server(archive.read_bytes()) as server:
        path = fetch_from(server, tmp_path, expected_archive_size=archive.stat().st_size)
    assert path.read_text().splitlines() == ROWS
    assert (tmp_path / "dl" / "yoochoose-data.7z").read_bytes() == archive.read_bytes()
    assert not list((tmp_path / "dl").glob("*.part"))


@pytest.mark.parametrize("honour_range", [True, False])
def test_broken_transfer_is_resumed_or_retried(archive, tmp_path, honour_range):
    with Server(archive.read_bytes(), cut_first=True, honour_range=honour_range) as server:
        path = fetch_from(server, tmp_path)
    assert path.read_text().splitlines() == ROWS
    assert len(server.requests) == 2
    assert server.requests[0] is None
    half = archive.stat().st_size // 2
    assert server.requests[1] == f"bytes={half}-"  # the client asked to resume


def test_wrong_size_is_refused_and_leaves_nothing(archive, tmp_path):
    with Server(archive.read_bytes() + b"junk") as server:
        with pytest.raises(DataError, match="expected"):
            fetch_from(server, tmp_path, expected_archive_size=archive.stat().st_size)
    assert not (tmp_path / "out" / "yoochoose-clicks.dat").exists()
    assert not (tmp_path / "dl" / "yoochoose-data.7z").exists()
    assert not list((tmp_path / "dl").glob("*.part"))


def test_wrong_row_count_is_refused_and_leaves_nothing(archive, tmp_path):
    with Server(archive.read_bytes()) as server:
        with pytest.raises(DataError, match=f"has {len(ROWS)} rows of clicks, expected 33,003,944"):
            fetch_from(server, tmp_path, expected_rows=33_003_944)
    out = tmp_path / "out"
    assert not (out / "yoochoose-clicks.dat").exists()
    assert not [p for p in out.iterdir()]  # the temporary extraction folder is gone too


def test_local_archive_and_local_clicks(archive, tmp_path):
    path = fetch(tmp_path / "a" / "yoochoose-clicks.dat", archive=archive, expected_rows=len(ROWS),
                 progress=False)
    assert path.read_text().splitlines() == ROWS
    same = fetch(tmp_path / "b" / "yoochoose-clicks.dat", clicks=path, expected_rows=len(ROWS))
    assert same == path
    with pytest.raises(DataError, match="is .* bytes, expected 5"):
        fetch(tmp_path / "c" / "yoochoose-clicks.dat", archive=archive, expected_archive_size=5)
    not_7z = tmp_path / "fake.7z"
    not_7z.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="fake.7z: cannot read the 7z archive"):
        fetch(tmp_path / "d" / "yoochoose-clicks.dat", archive=not_7z, expected_rows=None)
    assert not (tmp_path / "d" / "yoochoose-clicks.dat").exists()
