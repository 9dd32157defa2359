//! Descriptor and artifact locations and the registration roots
//! (`RELEASES.md` §3.1.2): lexical rules only, nothing is touched here.

use crate::domain::values::is_control;
use crate::error::{ApiError, ErrorCode};

/// A location in one of the accepted forms, after joining and decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// L1: `s3://<bucket>/<key>`.
    S3 { bucket: String, key: String },
    /// L2 (or L3/L4 resolved to L2): an absolute path such as `/srv/releases/a/b.json`.
    Local(String),
}

/// One entry of `TPF_RELEASES_REGISTRATION_ROOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An absolute directory, as configured with any trailing `/` removed.
    Local(String),
    /// `s3://bucket[/prefix]`, prefix empty or ending with `/`.
    S3 { bucket: String, prefix: String },
}

/// A location found beneath a root: the root and the remaining relative
/// segments joined with `/` (for `Local`, what `openat2` receives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beneath<'a> {
    pub root: &'a Root,
    pub rest: String,
}

/// Longest L2 path, in bytes.
const MAX_PATH_BYTES: usize = 4096;
/// Longest S3 key, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Longest part of a refused location quoted in a message, in characters.
const MAX_QUOTED_CHARS: usize = 512;

const SEGMENT_RULE: &str =
    "every segment must be non-empty, not . or .., and free of \\, #, ? and control characters";
const BUCKET_RULE: &str =
    "the bucket must be 3-63 characters of a-z 0-9 . - beginning and ending with a letter or digit";

/// Parses one root entry (already trimmed, non-empty). Syntax only: the
/// caller checks that a local root is an existing directory.
pub fn parse_root(entry: &str) -> Result<Root, String> {
    let refuse = |why: &str| format!("registration root {} is invalid: {why}", quote(entry));
    if let Some(rest) = entry.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_bucket(bucket) {
            return Err(refuse(BUCKET_RULE));
        }
        if prefix.is_empty() {
            return Ok(Root::S3 {
                bucket: bucket.to_owned(),
                prefix: String::new(),
            });
        }
        let bare = prefix.strip_suffix('/').unwrap_or(prefix);
        if !segments_ok(bare) {
            return Err(refuse(SEGMENT_RULE));
        }
        let prefix = format!("{bare}/");
        if prefix.len() > MAX_KEY_BYTES {
            return Err(refuse("the prefix must be at most 1024 bytes"));
        }
        Ok(Root::S3 {
            bucket: bucket.to_owned(),
            prefix,
        })
    } else if entry.starts_with('/') {
        let path = entry.trim_end_matches('/');
        if path.is_empty() {
            return Err(refuse(
                "the file-system root itself cannot be a registration root",
            ));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(refuse("the path must be at most 4096 bytes"));
        }
        if !segments_ok(&path[1..]) {
            return Err(refuse(SEGMENT_RULE));
        }
        Ok(Root::Local(path.to_owned()))
    } else {
        Err(refuse(
            "expected an absolute directory or s3://bucket[/prefix]",
        ))
    }
}

/// Parses `releaseDescriptorPath` (already trimmed, ≤ 4096 chars): L1 or L2.
/// Any failure → 400 `LOCATION_NOT_ALLOWED` quoting the location as written.
pub fn parse_descriptor_location(written: &str) -> Result<Location, ApiError> {
    let parsed = if let Some(rest) = written.strip_prefix("s3://") {
        parse_s3(rest)
    } else if written.starts_with('/') {
        parse_local(written.to_owned())
    } else {
        Err("expected an absolute path or an s3:// URI".to_owned())
    };
    parsed.map_err(|why| not_allowed(written, &why))
}

/// Resolves an artifact `uri` (L1–L4) against the descriptor's location
/// (`None` for an inline descriptor: relative URIs are refused).
/// Failures → 400 `LOCATION_NOT_ALLOWED`.
pub fn resolve_artifact_location(uri: &str, base: Option<&Location>) -> Result<Location, ApiError> {
    resolve(uri, base).map_err(|why| not_allowed(uri, &why))
}

fn resolve(uri: &str, base: Option<&Location>) -> Result<Location, String> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        return parse_s3(rest);
    }
    if uri.starts_with('/') {
        return parse_local(uri.to_owned());
    }
    if let Some(scheme) = scheme_of(uri) {
        if scheme != "file" {
            return Err(format!("the scheme {} is not allowed", quote(scheme)));
        }
        let after = &uri[5..];
        let path = match after.strip_prefix("//") {
            Some(auth_and_path) => {
                let slash = auth_and_path.find('/').unwrap_or(auth_and_path.len());
                if slash != 0 {
                    return Err("a file: URI must not name a host".to_owned());
                }
                auth_and_path
            }
            None => after,
        };
        if !path.starts_with('/') {
            return Err("a file: URI must hold an absolute path".to_owned());
        }
        return parse_local(percent_decode(path)?);
    }
    match base {
        None => Err(
            "a relative location needs a descriptor location; an inline descriptor has none"
                .to_owned(),
        ),
        Some(Location::Local(p)) => {
            let dir = &p[..p.rfind('/').unwrap_or(0)];
            parse_local(format!("{dir}/{uri}"))
        }
        Some(Location::S3 { bucket, key }) => {
            let dir = &key[..key.rfind('/').map_or(0, |i| i + 1)];
            check_key(&format!("{dir}{uri}")).map(|key| Location::S3 {
                bucket: bucket.clone(),
                key,
            })
        }
    }
}

/// Finds the longest root `location` is beneath, else 400 `LOCATION_NOT_ALLOWED`.
pub fn find_root<'a>(
    location: &Location,
    written: &str,
    roots: &'a [Root],
) -> Result<Beneath<'a>, ApiError> {
    let mut best: Option<(usize, Beneath<'a>)> = None;
    for root in roots {
        let found = match (location, root) {
            (Location::S3 { bucket, key }, Root::S3 { bucket: rb, prefix })
                if bucket == rb && key.len() > prefix.len() && key.starts_with(prefix.as_str()) =>
            {
                Some((prefix.len(), key.clone()))
            }
            (Location::Local(path), Root::Local(rp)) => path
                .strip_prefix(rp.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .filter(|r| !r.is_empty())
                .map(|r| (rp.len(), r.to_owned())),
            _ => None,
        };
        if let Some((len, rest)) = found {
            if best.as_ref().is_none_or(|(b, _)| len > *b) {
                best = Some((len, Beneath { root, rest }));
            }
        }
    }
    best.map(|(_, b)| b)
        .ok_or_else(|| not_allowed(written, "it is not beneath an allowed registration root"))
}

/// The 400 `LOCATION_NOT_ALLOWED` error, quoting the location as written.
fn not_allowed(written: &str, why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::LocationNotAllowed,
        format!("location {} is not allowed: {why}", quote(written)),
    )
}

/// `written` in double quotes, control characters escaped, cut if very long.
fn quote(written: &str) -> String {
    if written.chars().count() > MAX_QUOTED_CHARS {
        let cut: String = written.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{written:?}")
    }
}

/// The scheme when `s` matches `^[A-Za-z][A-Za-z0-9+.-]*:`.
fn scheme_of(s: &str) -> Option<&str> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')))
    .then_some(scheme)
}

/// L1 after `s3://`.
fn parse_s3(rest: &str) -> Result<Location, String> {
    let Some((bucket, key)) = rest.split_once('/') else {
        return Err("an s3:// location needs a bucket and a key".to_owned());
    };
    if !is_bucket(bucket) {
        return Err(BUCKET_RULE.to_owned());
    }
    let key = check_key(key)?;
    Ok(Location::S3 {
        bucket: bucket.to_owned(),
        key,
    })
}

fn check_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err("the key must be 1-1024 bytes".to_owned());
    }
    if !segments_ok(key) {
        return Err(SEGMENT_RULE.to_owned());
    }
    Ok(key.to_owned())
}

/// L2: `path` starts with `/`.
fn parse_local(path: String) -> Result<Location, String> {
    if path.len() > MAX_PATH_BYTES {
        return Err("the path must be at most 4096 bytes".to_owned());
    }
    match path.strip_prefix('/') {
        Some(rel) if segments_ok(rel) => Ok(Location::Local(path)),
        Some(_) => Err(SEGMENT_RULE.to_owned()),
        None => Err("expected an absolute path".to_owned()),
    }
}

/// The segment rule over `rel` split at `/`.
fn segments_ok(rel: &str) -> bool {
    rel.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && !seg
                .chars()
                .any(|c| matches!(c, '\\' | '#' | '?') || is_control(c))
    })
}

/// S3 bucket names: 3–63 of `a-z 0-9 . -`, first and last a letter or digit.
fn is_bucket(b: &str) -> bool {
    let bytes = b.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|&c| edge(c) || matches!(c, b'.' | b'-'))
        && edge(bytes[0])
        && edge(bytes[bytes.len() - 1])
}

/// Percent-decodes once; invalid escapes or non-UTF-8 results are refused.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "invalid percent-encoding".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the percent-decoded path is not UTF-8".to_owned())
}

/// The final segment of a location (for the artifact store's extension rule).
pub fn final_segment(location: &Location) -> &str {
    match location {
        Location::S3 { key, .. } => key.rsplit('/').next().unwrap_or(key),
        Location::Local(p) => p.rsplit('/').next().unwrap_or(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(p: &str) -> Location {
        Location::Local(p.to_owned())
    }

    fn s3(bucket: &str, key: &str) -> Location {
        Location::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        }
    }

    fn refused(r: Result<Location, ApiError>) -> ApiError {
        let e = r.expect_err("location must be refused");
        assert_eq!(e.code, ErrorCode::LocationNotAllowed);
        e
    }

    #[test]
    fn roots_parse_and_normalise() {
        assert_eq!(
            parse_root("/srv/releases/"),
            Ok(Root::Local("/srv/releases".into()))
        );
        assert_eq!(
            parse_root("/srv/releases"),
            Ok(Root::Local("/srv/releases".into()))
        );
        assert_eq!(
            parse_root("s3://my-bucket"),
            Ok(Root::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            parse_root("s3://my-bucket/"),
            Ok(Root::S3 {
                bucket: "my-bucket".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            parse_root("s3://my.bucket/rel/eases"),
            Ok(Root::S3 {
                bucket: "my.bucket".into(),
                prefix: "rel/eases/".into()
            })
        );
        assert_eq!(
            parse_root("s3://my.bucket/rel/"),
            Ok(Root::S3 {
                bucket: "my.bucket".into(),
                prefix: "rel/".into()
            })
        );
        for bad in [
            "/",
            "//",
            "relative/dir",
            "file:///srv",
            "/srv/../etc",
            "/srv//x",
            "/srv/./x",
            "s3://Bucket",
            "s3://ab",
            "s3://-ab",
            "s3://ab-",
            "s3://bucket//",
            "s3://bucket/a/../b",
            "https://example.com",
        ] {
            assert!(parse_root(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptor_location_is_s3_or_absolute_path() {
        assert_eq!(
            parse_descriptor_location("/srv/releases/a/p.json").unwrap(),
            local("/srv/releases/a/p.json")
        );
        assert_eq!(
            parse_descriptor_location("s3://bkt/a%20b/p.json").unwrap(),
            s3("bkt", "a%20b/p.json")
        );
        for bad in [
            "file:///srv/releases/p.json",
            "relative/p.json",
            "s3://bkt",
            "s3://bkt/",
            "s3://bkt/a//b",
            "s3://BKT/a",
            "/srv/releases/",
            "/srv/releases/../p.json",
            "/srv/a\\b",
            "/srv/a#b",
            "/srv/a?b",
            "/srv/a\u{1}b",
            "https://example.com/p.json",
        ] {
            refused(parse_descriptor_location(bad));
        }
        refused(parse_descriptor_location(&format!("/{}", "a".repeat(4096))));
        refused(parse_descriptor_location(&format!(
            "s3://bkt/{}",
            "a".repeat(1025)
        )));
        assert!(parse_descriptor_location(&format!("s3://bkt/{}", "a".repeat(1024))).is_ok());
    }

    #[test]
    fn messages_quote_the_location_as_written() {
        let e = refused(parse_descriptor_location("file:///etc/passwd"));
        assert!(
            e.message.contains("\"file:///etc/passwd\""),
            "{}",
            e.message
        );
        let e = refused(resolve_artifact_location(
            "../x.jar",
            Some(&local("/srv/a/p.json")),
        ));
        assert!(e.message.contains("\"../x.jar\""), "{}", e.message);
    }

    #[test]
    fn artifact_locations_resolve_all_four_forms() {
        let base = local("/srv/releases/a/pipeline-release.json");
        let b = Some(&base);
        assert_eq!(
            resolve_artifact_location("s3://bkt/k/x.jar", b).unwrap(),
            s3("bkt", "k/x.jar")
        );
        assert_eq!(
            resolve_artifact_location("/srv/x.jar", b).unwrap(),
            local("/srv/x.jar")
        );
        assert_eq!(
            resolve_artifact_location("file:///srv/a%20b.jar", b).unwrap(),
            local("/srv/a b.jar")
        );
        assert_eq!(
            resolve_artifact_location("file:/srv/x.jar", b).unwrap(),
            local("/srv/x.jar")
        );
        assert_eq!(
            resolve_artifact_location("target/x.jar", b).unwrap(),
            local("/srv/releases/a/target/x.jar")
        );
        assert_eq!(
            resolve_artifact_location("1:x.jar", b).unwrap(),
            local("/srv/releases/a/1:x.jar")
        );
        let s3base = s3("bkt", "rel/v1/pipeline-release.json");
        assert_eq!(
            resolve_artifact_location("target/x.jar", Some(&s3base)).unwrap(),
            s3("bkt", "rel/v1/target/x.jar")
        );
        let top = s3("bkt", "pipeline-release.json");
        assert_eq!(
            resolve_artifact_location("x.jar", Some(&top)).unwrap(),
            s3("bkt", "x.jar")
        );
        assert_eq!(
            resolve_artifact_location("x.jar", Some(&local("/p.json"))).unwrap(),
            local("/x.jar")
        );
    }

    #[test]
    fn artifact_locations_refused() {
        let base = local("/srv/releases/a/pipeline-release.json");
        let b = Some(&base);
        for bad in [
            "../x.jar",
            "./x.jar",
            "a/../../x.jar",
            "target//x.jar",
            "target/",
            "file://host/srv/x.jar",
            "file://localhost/srv/x.jar",
            "file:relative.jar",
            "file:///srv/%2e%2e/x.jar",
            "file:///srv/%zz.jar",
            "file:///srv/%4",
            "file:///srv/%ff.jar",
            "file:///srv/%00.jar",
            "https://example.com/x.jar",
            "mvn:org.acme:x:1.0",
            "S3://bkt/x.jar",
            "C:/x.jar",
            "x#y.jar",
            "x?y.jar",
            "a\\b.jar",
        ] {
            refused(resolve_artifact_location(bad, b));
        }
        refused(resolve_artifact_location("target/x.jar", None));
        refused(resolve_artifact_location(
            "../x.jar",
            Some(&s3("bkt", "rel/p.json")),
        ));
    }

    #[test]
    fn longest_root_wins_and_rest_is_relative() {
        let roots = vec![
            Root::Local("/srv".into()),
            Root::Local("/srv/releases".into()),
            Root::S3 {
                bucket: "bkt".into(),
                prefix: String::new(),
            },
            Root::S3 {
                bucket: "bkt".into(),
                prefix: "rel/".into(),
            },
        ];
        let b = find_root(&local("/srv/releases/a/x.jar"), "x.jar", &roots).unwrap();
        assert_eq!(b.root, &roots[1]);
        assert_eq!(b.rest, "a/x.jar");
        let b = find_root(&local("/srv/other/x.jar"), "x.jar", &roots).unwrap();
        assert_eq!(b.root, &roots[0]);
        assert_eq!(b.rest, "other/x.jar");
        let b = find_root(&s3("bkt", "rel/x.jar"), "s3://bkt/rel/x.jar", &roots).unwrap();
        assert_eq!(b.root, &roots[3]);
        assert_eq!(b.rest, "rel/x.jar");
        let b = find_root(&s3("bkt", "other/x.jar"), "s3://bkt/other/x.jar", &roots).unwrap();
        assert_eq!(b.root, &roots[2]);
        assert_eq!(b.rest, "other/x.jar");
    }

    #[test]
    fn locations_outside_the_roots_are_refused() {
        let roots = vec![
            Root::Local("/srv/releases".into()),
            Root::S3 {
                bucket: "bkt".into(),
                prefix: "rel/".into(),
            },
        ];
        for loc in [
            local("/srv/releases"),
            local("/srv/releases-2/x.jar"),
            local("/srv/x.jar"),
            s3("bkt", "rel/"),
            s3("bkt", "relx/a.jar"),
            s3("other", "rel/a.jar"),
        ] {
            let e = find_root(&loc, "as-written", &roots).unwrap_err();
            assert_eq!(e.code, ErrorCode::LocationNotAllowed);
            assert!(e.message.contains("\"as-written\""), "{}", e.message);
        }
        assert!(find_root(&local("/srv/releases/x"), "x", &[]).is_err());
    }

    #[test]
    fn final_segment_is_the_last_path_part() {
        assert_eq!(final_segment(&local("/srv/a/x.jar")), "x.jar");
        assert_eq!(final_segment(&s3("bkt", "x.tar.gz")), "x.tar.gz");
    }
}
