#!/usr/bin/env python3
"""Push root filesystems as one multi-platform OCI image index to a plain-HTTP registry.

    push_index.py REGISTRY REPOSITORY TAG ANNOTATION PLATFORM=ROOTFS_DIR...

e.g. `push_index.py 127.0.0.1:5000 hive/busybox latest dev.cargo-hive.seed=2 linux/amd64=/tmp/a linux/arm64/v8=/tmp/b`.

Used by scripts/buildkit-up to seed the test registry's base images. It talks to the registry directly instead of
going through a Docker daemon: the result does not depend on which daemon (or image store) is running, and the
layers are reproducible (sorted entries, mtime 0, uid/gid 0, gzip without a timestamp), so the same inputs give the
same digests. Prints the index digest on stdout.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.error
import urllib.request

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EPOCH = "1970-01-01T00:00:00Z"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(root):
    """A reproducible tar of `root`: entries in walk order with sorted names, owned by root, dated 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def parse_platform(text):
    parts = text.split("/")
    if len(parts) not in (2, 3):
        sys.exit(f"push_index.py: not a platform (os/arch[/variant]): {text}")
    platform = {"architecture": parts[1], "os": parts[0]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


class Registry:
    """The few calls of the distribution API a push needs (no auth: the seeded registry is the plain one)."""

    def __init__(self, address, repository):
        self.base = f"http://{address}"
        self.repository = repository

    def request(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as error:
            if method == "HEAD" and error.code == 404:
                return 404, error.headers
            body = error.read().decode(errors="replace")[:500]
            sys.exit(f"push_index.py: {method} {url} answered {error.code}: {body}")

    def push_blob(self, data):
        blob = digest(data)
        status, _ = self.request("HEAD", f"/v2/{self.repository}/blobs/{blob}")
        if status == 200:
            return blob
        _, headers = self.request("POST", f"/v2/{self.repository}/blobs/uploads/")
        location = headers["Location"]
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={blob}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return blob

    def push_manifest(self, reference, media_type, data):
        self.request(
            "PUT", f"/v2/{self.repository}/manifests/{reference}", data=data, headers={"Content-Type": media_type}
        )


def canonical(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def push_platform(registry, platform, root):
    """Pushes one platform's layer, config and manifest; returns the index entry for it."""
    tar = layer_tar(root)
    layer = gzip.compress(tar, compresslevel=6, mtime=0)
    config = dict(platform)
    config.update(
        {
            "config": {"Cmd": ["/bin/sh"]},
            "created": EPOCH,
            "history": [{"created": EPOCH, "created_by": "scripts/buildkit-up"}],
            "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
        }
    )
    config_bytes = canonical(config)
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": registry.push_blob(config_bytes), "size": len(config_bytes)},
            "layers": [{"mediaType": LAYER, "digest": registry.push_blob(layer), "size": len(layer)}],
        }
    )
    registry.push_manifest(digest(manifest), MANIFEST, manifest)
    return {"mediaType": MANIFEST, "digest": digest(manifest), "size": len(manifest), "platform": platform}


def main(argv):
    if len(argv) < 6 or "=" not in argv[4]:
        sys.exit(__doc__.strip().splitlines()[2])
    address, repository, tag, annotation = argv[1:5]
    registry = Registry(address, repository)
    entries = []
    for item in argv[5:]:
        platform, _, root = item.partition("=")
        if not os.path.isdir(root):
            sys.exit(f"push_index.py: not a directory: {root}")
        entries.append(push_platform(registry, parse_platform(platform), root))
    key, _, value = annotation.partition("=")
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries, "annotations": {key: value}})
    registry.push_manifest(tag, INDEX, index)
    print(digest(index))


if __name__ == "__main__":
    main(sys.argv)
