#!/usr/bin/env python3
"""Multi-platform OCI image indexes in a plain-HTTP registry, for seeding the test registry's base images.

    oci_index.py push REGISTRY REPOSITORY TAG KEY=VALUE PLATFORM=ROOTFS_DIR...
        Pushes each root filesystem as one platform's image and an index of them, annotated KEY=VALUE, under TAG;
        prints the index digest.
    oci_index.py current REGISTRY REPOSITORY TAG KEY=VALUE PLATFORM...
        Exits 0 when TAG is an index annotated KEY=VALUE with an image for every PLATFORM, 1 otherwise.

e.g. `oci_index.py push 127.0.0.1:5000 hive/busybox latest dev.cargo-hive.seed=2 linux/amd64=/a linux/arm64/v8=/b`.

Used by scripts/buildkit-up. It talks to the registry directly instead of going through a Docker daemon: the result
does not depend on which daemon (or image store) runs, and the layers are reproducible (sorted entries, mtime 0,
uid/gid 0, gzip without a timestamp), so the same inputs give the same digests.
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
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
EPOCH = "1970-01-01T00:00:00Z"


def digest(data):
    """The OCI content digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(root):
    """A reproducible tar of `root`: depth-first, names sorted, owned by root, dated 0; symlinks kept as symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(directory):
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if info.isdir():
                    add(path)

        add(root)
    return buf.getvalue()


def parse_platform(text):
    """`os/arch[/variant]` as the `platform` object of an index entry."""
    parts = text.split("/")
    if len(parts) not in (2, 3):
        sys.exit(f"oci_index.py: not a platform (os/arch[/variant]): {text}")
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
            sys.exit(f"oci_index.py: {method} {url} answered {error.code}: {body}")

    def get_manifest(self, reference):
        """The decoded manifest or index `reference` names, or None when there is none (or the registry is down)."""
        url = f"{self.base}/v2/{self.repository}/manifests/{reference}"
        accept = ", ".join((INDEX, DOCKER_LIST, MANIFEST, DOCKER_MANIFEST))
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept}), timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

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
    """JSON bytes that depend only on `value` (sorted keys, no spaces), so digests are stable."""
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


def is_current(index, annotation, platforms):
    """Whether `index` (a decoded manifest of any kind) is an index annotated `annotation` (key, value) with an
    image for each of `platforms` (dicts as `parse_platform` returns; a missing variant matches any)."""
    if not isinstance(index, dict) or index.get("mediaType", INDEX) not in (INDEX, DOCKER_LIST):
        return False
    key, value = annotation
    if (index.get("annotations") or {}).get(key) != value:
        return False
    have = [entry.get("platform") or {} for entry in index.get("manifests") or []]
    return all(any(all(p.get(k) == v for k, v in want.items()) for p in have) for want in platforms)


def push(registry, tag, annotation, images):
    """Pushes `images` ((platform, rootfs dir) pairs) and their index under `tag`; returns the index digest."""
    entries = []
    for platform, root in images:
        if not os.path.isdir(root):
            sys.exit(f"oci_index.py: not a directory: {root}")
        entries.append(push_platform(registry, platform, root))
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries, "annotations": dict([annotation])})
    registry.push_manifest(tag, INDEX, index)
    return digest(index)


def main(argv):
    if len(argv) < 7 or argv[1] not in ("push", "current") or "=" not in argv[5]:
        sys.exit("usage:\n" + "\n".join(__doc__.strip().splitlines()[2:6]))
    command, address, repository, tag, annotation = argv[1:6]
    registry = Registry(address, repository)
    annotation = tuple(annotation.split("=", 1))
    if command == "push":
        images = [(parse_platform(item.partition("=")[0]), item.partition("=")[2]) for item in argv[6:]]
        print(push(registry, tag, annotation, images))
    else:
        index = registry.get_manifest(tag)
        sys.exit(0 if is_current(index, annotation, [parse_platform(p) for p in argv[6:]]) else 1)


if __name__ == "__main__":
    main(sys.argv)
