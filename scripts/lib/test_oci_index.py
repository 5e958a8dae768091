"""Tests of oci_index.py: reproducible layers, the seed check, and a push against an in-memory registry.

Run with `python3 -m unittest discover -s scripts/lib` (scripts/test does).
"""

import hashlib
import http.server
import io
import json
import os
import tarfile
import tempfile
import threading
import unittest

import oci_index

ANNOTATION = ("dev.cargo-hive.seed", "2")
AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}


def make_rootfs(root, mtime):
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "bin", "busybox"), "wb") as f:
        f.write(b"\x7fELF not really")
    os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
    os.symlink("busybox", os.path.join(root, "bin", "sh"))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)


class LayerTar(unittest.TestCase):
    def test_same_tree_with_other_mtimes_gives_the_same_bytes(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            make_rootfs(a, 1_000_000)
            make_rootfs(b, 2_000_000)
            self.assertEqual(oci_index.layer_tar(a), oci_index.layer_tar(b))

    def test_entries_are_sorted_owned_by_root_and_keep_symlinks(self):
        with tempfile.TemporaryDirectory() as root:
            make_rootfs(root, 1_000_000)
            with tarfile.open(fileobj=io.BytesIO(oci_index.layer_tar(root))) as tar:
                members = tar.getmembers()
        self.assertEqual([m.name for m in members], ["bin", "bin/busybox", "bin/sh", "etc", "etc/passwd"])
        self.assertTrue(all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members))
        self.assertEqual(members[2].linkname, "busybox")
        self.assertTrue(members[2].issym())
        self.assertEqual(members[1].mode & 0o777, 0o755)


class IsCurrent(unittest.TestCase):
    def index(self, platforms, annotations=None, media_type=oci_index.INDEX):
        entries = [{"mediaType": oci_index.MANIFEST, "digest": "sha256:00", "size": 1, "platform": p} for p in platforms]
        index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        if annotations is not None:
            index["annotations"] = annotations
        return index

    def test_a_two_platform_index_of_this_seed_is_current(self):
        index = self.index([AMD64, ARM64], dict([ANNOTATION]))
        self.assertTrue(oci_index.is_current(index, ANNOTATION, [{"os": "linux", "architecture": "amd64"},
                                                                  {"os": "linux", "architecture": "arm64"}]))

    def test_the_single_platform_image_of_earlier_scripts_is_not(self):
        old = {
            "schemaVersion": 2,
            "mediaType": oci_index.DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:00"},
            "layers": [],
        }
        self.assertFalse(oci_index.is_current(old, ANNOTATION, [AMD64]))

    def test_an_index_of_another_seed_version_or_none_is_not(self):
        self.assertFalse(oci_index.is_current(self.index([AMD64, ARM64], {ANNOTATION[0]: "1"}), ANNOTATION, [AMD64]))
        self.assertFalse(oci_index.is_current(self.index([AMD64, ARM64]), ANNOTATION, [AMD64]))

    def test_an_index_missing_a_platform_is_not(self):
        index = self.index([AMD64], dict([ANNOTATION]))
        self.assertFalse(oci_index.is_current(index, ANNOTATION, [AMD64, {"os": "linux", "architecture": "arm64"}]))

    def test_nothing_in_the_registry_is_not(self):
        self.assertFalse(oci_index.is_current(None, ANNOTATION, [AMD64]))


class ParsePlatform(unittest.TestCase):
    def test_os_arch_and_variant(self):
        self.assertEqual(oci_index.parse_platform("linux/arm64/v8"), ARM64)
        self.assertEqual(oci_index.parse_platform("linux/amd64"), AMD64)
        with self.assertRaises(SystemExit):
            oci_index.parse_platform("amd64")


class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """Just enough of the distribution API: blob HEAD/upload, manifest PUT/GET; checks every digest."""

    blobs = {}
    manifests = {}

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.reply(200 if self.path.rsplit("/", 1)[-1] in self.blobs else 404)

    def do_POST(self):
        self.reply(202, headers=[("Location", "/v2/upload/1?state=x")])

    def do_PUT(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/v2/upload/"):
            claimed = self.path.split("digest=")[1]
            assert claimed == "sha256:" + hashlib.sha256(data).hexdigest(), "blob digest mismatch"
            self.blobs[claimed] = data
        else:
            manifest = json.loads(data)
            for ref in [manifest.get("config")] + manifest.get("layers", []) + manifest.get("manifests", []):
                if ref and ref["digest"] not in self.blobs and ref["digest"] not in self.manifests:
                    return self.reply(400, b"unknown reference")
            self.manifests[self.path.rsplit("/", 1)[-1]] = data
            self.manifests["sha256:" + hashlib.sha256(data).hexdigest()] = data
        self.reply(201)

    def do_GET(self):
        data = self.manifests.get(self.path.rsplit("/", 1)[-1])
        self.reply(200, data) if data else self.reply(404)


class Push(unittest.TestCase):
    def test_a_pushed_index_is_current_and_a_second_push_gives_the_same_digest(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        registry = oci_index.Registry(f"127.0.0.1:{server.server_address[1]}", "hive/busybox")
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            make_rootfs(a, 1_000_000)
            make_rootfs(b, 1_000_000)
            with open(os.path.join(b, "etc", "arch"), "w") as f:
                f.write("arm64\n")
            first = oci_index.push(registry, "latest", ANNOTATION, [(AMD64, a), (ARM64, b)])
            second = oci_index.push(registry, "latest", ANNOTATION, [(AMD64, a), (ARM64, b)])
        self.assertEqual(first, second)
        index = registry.get_manifest("latest")
        self.assertTrue(oci_index.is_current(index, ANNOTATION, [AMD64, ARM64]))
        arm64 = json.loads(FakeRegistry.manifests[index["manifests"][1]["digest"]])
        config = json.loads(FakeRegistry.blobs[arm64["config"]["digest"]])
        self.assertEqual((config["os"], config["architecture"], config["variant"]), ("linux", "arm64", "v8"))


if __name__ == "__main__":
    unittest.main()
