//! The parser against `oci-spec`'s regex, the grammar it replaces: the same texts accepted, the same errors, the
//! same normalized parts, over hand-written edge cases, a cross product of parts and mutations of a full reference.

use super::*;

use oci_spec::distribution::Reference;

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How a text fares with one parser: its parts, or the error's words.
type Outcome = Result<(String, String, Option<String>, Option<String>, String), String>;

fn ours(text: &str) -> Outcome {
    ImageReference::parse(text)
        .map(|r| {
            let whole = r.whole();
            (r.registry, r.repository, r.tag, r.digest, whole)
        })
        .map_err(|err| err.to_string())
}

fn theirs(text: &str) -> Outcome {
    Reference::try_from(text)
        .map(|r| {
            let whole = r.whole();
            let (registry, repository) = (r.registry().to_owned(), r.repository().to_owned());
            let (tag, digest) = (r.tag().map(str::to_owned), r.digest().map(str::to_owned));
            (registry, repository, tag, digest, whole)
        })
        .map_err(|err| err.to_string())
}

/// Compares every text and returns how many were valid and invalid, so a caller can check the corpus covers both.
fn compare(texts: &[String]) -> (usize, usize) {
    let mut differences = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for text in texts {
        let (a, b) = (ours(text), theirs(text));
        if a.is_ok() {
            valid += 1;
        } else {
            invalid += 1;
        }
        if a != b {
            differences.push(format!("{text:?}: ours {a:?}, oci-spec {b:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    (valid, invalid)
}

fn edge_cases() -> Vec<String> {
    let fixed = [
        "busybox",
        "test.com:tag",
        "test.com:5000",
        "test.com/repo:tag",
        "test:5000/repo",
        "test:5000/repo:tag",
        "lowercase:Uppercase",
        "Uppercase:tag",
        "LOCALHOST/foo",
        "Example.com/foo",
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "xn--n3h.com/myimage:xn--n3h.com",
        "foo_bar.com:8080",
        "foo/foo_bar.com:8080",
        "opensuse/leap:15.3",
        "docker.io/debian",
        "docker.io/library/debian",
        "index.docker.io/debian",
        "index.docker.io/team/app:1",
        "registry-1.docker.io/debian",
        "localhost/app",
        "localhost:5000/hive/glibc:latest",
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000/app:1",
        "[::1]:5000/app",
        "[fe80::1%25eth0]/app",
        "a/b/c/d/e/f",
        "a//b",
        "/a",
        "a/",
        ":a",
        "@a",
        "a:",
        "a@",
        "a:b:c",
        "a:b@c",
        "a@b@c",
        "a b",
        " a",
        "a\n",
        "a:1\n",
        "\u{e9}",
        "a:\u{e9}",
        "a:\u{1c5}",
        "a:\u{300}",
        "a:\u{300}x",
        "a:x\u{300}",
        "a:\u{203f}",
        "a:\u{200d}",
        "a:\u{2160}",
        "a:\u{0661}",
        "a:\u{bd}",
        "a:\u{1f433}",
        "-a/b",
        "a-/b",
        "a.-b.com/c",
        "a-b.com/c",
        "1.2.3.4/c",
        "a:0/b",
        "a:/b",
        "a:-1/b",
        "a:1:2/b",
        "a.com:5000:1/b",
    ];
    let mut texts: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    for (algorithm, length) in [
        ("sha256", 64),
        ("sha384", 96),
        ("sha512", 128),
        ("sha256", 63),
        ("sha256", 65),
        ("sha256", 32),
        ("sha256", 31),
        ("sha512", 64),
        ("SHA256", 64),
        ("md5", 32),
        ("blake3", 64),
        ("a+b.c_d-e", 64),
        ("a1", 64),
        ("1a", 64),
        ("a++b", 64),
        ("a+", 64),
        ("", 64),
    ] {
        let hex = "f".repeat(length);
        texts.push(format!("app@{algorithm}:{hex}"));
        texts.push(format!("app:1@{algorithm}:{}", hex.to_uppercase()));
        texts.push(format!("localhost:5000/app:1@{algorithm}:{hex}"));
    }
    texts.push(format!("app@sha256:{}g", &HEX64[1..]));
    texts.push(format!("app@sha256:{HEX64}@sha256:{HEX64}"));
    texts.push(format!("app@sha256:{HEX64}:1"));
    texts.push(format!("app@sha256:{HEX64}/x"));
    for length in [127, 128, 129] {
        texts.push(format!("app:{}", "t".repeat(length)));
        texts.push(format!("app:{}", "\u{e9}".repeat(length)));
    }
    // The repository's length counts after normalization: `library/` included, the registry not.
    for length in [246, 247, 248, 254, 255, 256] {
        texts.push("a".repeat(length));
        texts.push(format!("x/{}", "a".repeat(length)));
        texts.push(format!("localhost/{}", "a".repeat(length)));
        texts.push(format!("ghcr.io/{}:1@sha256:12", "a".repeat(length)));
        texts.push(format!("{}/a", "b".repeat(length)));
        // Which error wins when the name is too long and the digest wrong too.
        texts.push(format!("{}@sha256:{}", "a".repeat(length), "f".repeat(40)));
        texts.push(format!("{}@md5:{}", "a".repeat(length), "f".repeat(32)));
    }
    texts
}

/// Every combination of a registry, a path, a tag and a digest, valid and invalid ones.
fn cross_product() -> Vec<String> {
    let domains = [
        "",
        "localhost/",
        "localhost:5000/",
        "example.com/",
        "Example.COM:443/",
        "a-b.c/",
        "-a.com/",
        "a-.com/",
        "a..b/",
        "a:/",
        "a:b/",
        "[::1]:5000/",
        "127.0.0.1:5000/",
        "index.docker.io/",
        "docker.io/",
        "ab/",
        "a_b.com/",
        "LOCALHOST/",
        "a:5000:1/",
    ];
    let paths = [
        "a", "abc/def", "a.b", "a_b", "a__b", "a___b", "a-b", "a---b", "a-.b", "a._b", ".a", "a.",
        "_a", "a-", "A", "aB", "a//b", "a/", "a/b/c", "\u{e9}", "a b",
    ];
    let tags = [
        "", ":", ":latest", ":1.0", ":_x", ":.x", ":-x", ":x-._", ":\u{e9}", ":x y", ":x:y", ":X",
    ];
    let sha = format!("@sha256:{HEX64}");
    let digests = [
        String::new(),
        "@".to_owned(),
        sha.clone(),
        sha[..sha.len() - 1].to_owned(),
        format!("@sha512:{HEX64}{HEX64}"),
        format!("@md5:{}", &HEX64[..32]),
        format!("@sha256:{}", &HEX64[..31]),
    ];
    let mut texts = Vec::new();
    for domain in domains {
        for path in paths {
            for tag in tags {
                for digest in &digests {
                    texts.push(format!("{domain}{path}{tag}{digest}"));
                }
            }
        }
    }
    texts
}

/// A full reference with each character replaced by, and followed by, each of a set of interesting ones, and with
/// each character removed.
fn mutations() -> Vec<String> {
    let seed: Vec<char> = format!("localhost:5000/te_am/a-pp.x:1.0@sha256:{HEX64}")
        .chars()
        .collect();
    let replacements = ['a', 'A', '0', '.', '-', '_', ':', '/', '@', ' ', '\u{e9}'];
    let mut texts = Vec::new();
    for at in 0..seed.len() {
        let mut removed = seed.clone();
        removed.remove(at);
        texts.push(removed.into_iter().collect());
        for replacement in replacements {
            let mut replaced = seed.clone();
            replaced[at] = replacement;
            texts.push(replaced.iter().collect());
            replaced.insert(at, seed[at]);
            texts.push(replaced.into_iter().collect());
        }
    }
    texts
}

/// Short texts over a small alphabet, from a fixed-seed generator: where the grammar's corners meet.
fn random_texts() -> Vec<String> {
    let alphabet: Vec<char> = "ab0.-_:/@A\u{e9}".chars().collect();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..20_000)
        .map(|_| {
            let length = 1 + next() % 12;
            (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
        .collect()
}

#[test]
fn edge_cases_fare_as_with_oci_spec() {
    let (valid, invalid) = compare(&edge_cases());
    assert!(
        valid >= 50 && invalid >= 50,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn every_combination_of_parts_fares_as_with_oci_spec() {
    let (valid, invalid) = compare(&cross_product());
    assert!(
        valid >= 500 && invalid >= 5000,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn mutations_of_a_full_reference_fare_as_with_oci_spec() {
    let (valid, invalid) = compare(&mutations());
    assert!(
        valid >= 300 && invalid >= 300,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn random_short_texts_fare_as_with_oci_spec() {
    let (valid, invalid) = compare(&random_texts());
    assert!(
        valid >= 500 && invalid >= 5000,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn normalizes_as_docker_does() {
    for (text, whole) in [
        ("debian", "docker.io/library/debian:latest"),
        ("acme/api:1", "docker.io/acme/api:1"),
        ("index.docker.io/debian:12", "docker.io/library/debian:12"),
        ("localhost/a", "localhost/a:latest"),
        ("localhost:5000/a/b:1", "localhost:5000/a/b:1"),
        ("ghcr.io/acme/api", "ghcr.io/acme/api:latest"),
    ] {
        let parsed = ImageReference::parse(text).unwrap();
        assert_eq!(parsed.whole(), whole, "{text}");
        assert_eq!(text.parse::<ImageReference>().unwrap(), parsed);
    }
    let pinned = ImageReference::parse(&format!("alpine@sha256:{HEX64}")).unwrap();
    assert_eq!(
        (pinned.tag(), pinned.digest()),
        (None, Some(format!("sha256:{HEX64}").as_str()))
    );
    assert_eq!(pinned.registry(), "docker.io");
    assert_eq!(pinned.repository(), "library/alpine");
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(ImageReference::parse(""), Err(ReferenceError::Empty));
    assert_eq!(
        ImageReference::parse("debian:12:slim"),
        Err(ReferenceError::Format)
    );
    assert_eq!(
        ImageReference::parse(&"a".repeat(256)),
        Err(ReferenceError::NameTooLong)
    );
    assert_eq!(
        ImageReference::parse(&format!("a@sha256:{HEX64}0")),
        Err(ReferenceError::DigestLength)
    );
    assert_eq!(
        ImageReference::parse(&format!("a@md5:{HEX64}")),
        Err(ReferenceError::DigestUnsupported)
    );
    assert_eq!(
        ReferenceError::NameTooLong.to_string(),
        "repository name must not be more than 255 characters"
    );
}
