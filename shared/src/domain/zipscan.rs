//! Finding `META-INF/pipeline/pipeline-contract.json` inside a zip/jar
//! artifact (`RELEASES.md` §2.2). The `zip` crate keeps only the last of two
//! same-named entries, so the central directory is scanned for duplicates.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::domain::contract::MAX_CONTRACT_BYTES;
use crate::error::{ApiError, ErrorCode};

/// Name of the embedded contract entry.
pub const CONTRACT_ENTRY: &str = "META-INF/pipeline/pipeline-contract.json";

/// What an artifact holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZipContract {
    /// No readable end-of-central-directory record: not a zip.
    NotZip,
    /// A zip without the entry.
    NoEntry,
    /// The entry's uncompressed bytes (≤ 1 MiB).
    Entry(Vec<u8>),
}

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: u64 = 22;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_LOCATOR_LEN: u64 = 20;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
/// EOCD record plus the longest comment.
const EOCD_SEARCH: u64 = 65_557;

/// The one central-directory entry named [`CONTRACT_ENTRY`].
struct Found {
    flags: u16,
    method: u16,
}

/// Inspects `source`. Entry present twice, encrypted, neither stored nor
/// deflated, or over 1 MiB → 400 `CONTRACT_INVALID`; read errors → 400
/// `ARTIFACT_UNREADABLE`.
pub fn find_contract<R: Read + Seek>(mut source: R) -> Result<ZipContract, ApiError> {
    let found = match scan(&mut source).map_err(unreadable)? {
        Scan::NotZip => return Ok(ZipContract::NotZip),
        Scan::Entries(0, _) => return Ok(ZipContract::NoEntry),
        Scan::Entries(1, Some(found)) => found,
        Scan::Entries(_, _) => {
            return Err(contract_invalid(format!(
                "the zip entry {CONTRACT_ENTRY} is present twice"
            )))
        }
    };
    if found.flags & 1 != 0 {
        return Err(contract_invalid(format!(
            "the zip entry {CONTRACT_ENTRY} is encrypted"
        )));
    }
    if !matches!(found.method, 0 | 8) {
        return Err(contract_invalid(format!(
            "the zip entry {CONTRACT_ENTRY} is neither stored nor deflated"
        )));
    }
    source.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let mut archive = match zip::ZipArchive::new(&mut source) {
        Ok(a) => a,
        Err(zip::result::ZipError::Io(e)) => return Err(unreadable(e)),
        Err(_) => return Ok(ZipContract::NotZip),
    };
    let entry = match archive.by_name(CONTRACT_ENTRY) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::Io(e)) => return Err(unreadable(e)),
        Err(_) => {
            return Err(contract_invalid(format!(
                "the zip entry {CONTRACT_ENTRY} cannot be read"
            )))
        }
    };
    let mut bytes = Vec::new();
    match entry
        .take(MAX_CONTRACT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
    {
        Ok(_) => {}
        // Bad compressed data, a checksum mismatch or a truncated entry.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            return Err(contract_invalid(format!(
                "the zip entry {CONTRACT_ENTRY} is corrupt"
            )))
        }
        Err(e) => return Err(unreadable(e)),
    }
    if bytes.len() > MAX_CONTRACT_BYTES {
        return Err(contract_invalid(format!(
            "the zip entry {CONTRACT_ENTRY} is larger than {MAX_CONTRACT_BYTES} bytes"
        )));
    }
    Ok(ZipContract::Entry(bytes))
}

enum Scan {
    NotZip,
    /// How many entries carry the contract name, and the last of them.
    Entries(usize, Option<Found>),
}

/// Locates the end-of-central-directory record (last one whose central
/// directory parses) and counts the entries named [`CONTRACT_ENTRY`].
fn scan<R: Read + Seek>(source: &mut R) -> io::Result<Scan> {
    let len = source.seek(SeekFrom::End(0))?;
    if len < EOCD_LEN {
        return Ok(Scan::NotZip);
    }
    let tail_start = len.saturating_sub(EOCD_SEARCH);
    let mut tail = vec![0; (len - tail_start) as usize];
    source.seek(SeekFrom::Start(tail_start))?;
    source.read_exact(&mut tail)?;

    let mut pos = tail.len() - EOCD_LEN as usize;
    loop {
        if u32_at(&tail, pos) == EOCD_SIG {
            let eocd_abs = tail_start + pos as u64;
            if let Some(dir) = directory(source, &tail[pos..], eocd_abs, len)? {
                if let Some(scan) = scan_directory(source, &dir, len)? {
                    return Ok(scan);
                }
            }
        }
        if pos == 0 {
            return Ok(Scan::NotZip);
        }
        pos -= 1;
    }
}

/// Where the central directory is, per the EOCD (and ZIP64) records.
struct Directory {
    /// Candidate absolute offsets of the first entry (as recorded, and as
    /// implied by a prefix before the archive such as a launcher script).
    starts: Vec<u64>,
    size: u64,
    entries: u64,
}

fn directory<R: Read + Seek>(
    source: &mut R,
    eocd: &[u8],
    eocd_abs: u64,
    len: u64,
) -> io::Result<Option<Directory>> {
    let comment_len = u16_at(eocd, 20) as usize;
    if EOCD_LEN as usize + comment_len > eocd.len() {
        return Ok(None);
    }
    let mut entries = u64::from(u16_at(eocd, 10));
    let mut size = u64::from(u32_at(eocd, 12));
    let mut offset = u64::from(u32_at(eocd, 16));
    // The record that ends the central directory: the EOCD, or the ZIP64 record.
    let mut dir_end = eocd_abs;

    if eocd_abs >= EOCD64_LOCATOR_LEN {
        let mut locator = [0u8; EOCD64_LOCATOR_LEN as usize];
        source.seek(SeekFrom::Start(eocd_abs - EOCD64_LOCATOR_LEN))?;
        source.read_exact(&mut locator)?;
        if u32_at(&locator, 0) == EOCD64_LOCATOR_SIG {
            let recorded = u64_at(&locator, 8);
            let locator_abs = eocd_abs - EOCD64_LOCATOR_LEN;
            // Also try the record right before the locator (prefixed archives).
            let mut record = None;
            for at in [recorded, locator_abs.saturating_sub(EOCD64_LEN as u64)] {
                if at
                    .checked_add(EOCD64_LEN as u64)
                    .is_none_or(|end| end > locator_abs)
                {
                    continue;
                }
                let mut buf = [0u8; EOCD64_LEN];
                source.seek(SeekFrom::Start(at))?;
                source.read_exact(&mut buf)?;
                if u32_at(&buf, 0) == EOCD64_SIG {
                    record = Some((at, buf));
                    break;
                }
            }
            let Some((at, buf)) = record else {
                return Ok(None);
            };
            entries = u64_at(&buf, 32);
            size = u64_at(&buf, 40);
            offset = u64_at(&buf, 48);
            dir_end = at;
        }
    }
    if size > dir_end || size > len {
        return Ok(None);
    }
    let mut starts = vec![offset];
    let implied = dir_end - size;
    if implied != offset {
        starts.push(implied);
    }
    Ok(Some(Directory {
        starts,
        size,
        entries,
    }))
}

/// Walks the central directory at each candidate start; None if no
/// candidate holds `entries` well-formed entries within `size` bytes.
fn scan_directory<R: Read + Seek>(
    source: &mut R,
    dir: &Directory,
    len: u64,
) -> io::Result<Option<Scan>> {
    // Each entry takes at least 46 bytes.
    if dir.entries > dir.size / CENTRAL_LEN as u64 + 1 {
        return Ok(None);
    }
    'start: for &start in &dir.starts {
        if start.checked_add(dir.size).is_none_or(|end| end > len) {
            continue;
        }
        source.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::new(source.by_ref().take(dir.size));
        let mut count = 0;
        let mut last = None;
        let mut header = [0u8; CENTRAL_LEN];
        let mut name = Vec::new();
        for _ in 0..dir.entries {
            if !read_full(&mut reader, &mut header)? || u32_at(&header, 0) != CENTRAL_SIG {
                continue 'start;
            }
            let name_len = u16_at(&header, 28) as usize;
            let extra_len = u64::from(u16_at(&header, 30));
            let comment_len = u64::from(u16_at(&header, 32));
            name.resize(name_len, 0);
            if !read_full(&mut reader, &mut name)? {
                continue 'start;
            }
            let skip = extra_len + comment_len;
            if io::copy(&mut reader.by_ref().take(skip), &mut io::sink())? != skip {
                continue 'start;
            }
            if name == CONTRACT_ENTRY.as_bytes() {
                count += 1;
                last = Some(Found {
                    flags: u16_at(&header, 8),
                    method: u16_at(&header, 10),
                });
            }
        }
        return Ok(Some(Scan::Entries(count, last)));
    }
    Ok(None)
}

/// Fills `buf`; false at end of input before it is full.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn contract_invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::ContractInvalid, message)
}

fn unreadable(e: io::Error) -> ApiError {
    tracing::warn!(error = %e, "artifact read failed");
    ApiError::new(
        ErrorCode::ArtifactUnreadable,
        "the artifact could not be read",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    const CONTRACT: &[u8] =
        br#"{"schemaVersion":1,"pipelineId":"p","contractVersion":"c","contractHash":"h"}"#;

    fn build(entries: &[(&str, &[u8], CompressionMethod)], comment: Option<&[u8]>) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, method) in entries {
            w.start_file(
                *name,
                SimpleFileOptions::default().compression_method(*method),
            )
            .unwrap();
            w.write_all(data).unwrap();
        }
        if let Some(c) = comment {
            w.set_raw_comment(c.into()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn jar(method: CompressionMethod) -> Vec<u8> {
        build(
            &[
                (
                    "META-INF/MANIFEST.MF",
                    b"Manifest-Version: 1.0\n",
                    CompressionMethod::Deflated,
                ),
                (CONTRACT_ENTRY, CONTRACT, method),
                (
                    "com/acme/App.class",
                    &[0xCA, 0xFE, 0xBA, 0xBE],
                    CompressionMethod::Stored,
                ),
            ],
            None,
        )
    }

    fn find(bytes: &[u8]) -> Result<ZipContract, ApiError> {
        find_contract(Cursor::new(bytes))
    }

    fn replace_all(buf: &mut [u8], from: &[u8], to: &[u8]) -> usize {
        assert_eq!(from.len(), to.len());
        let mut n = 0;
        let mut i = 0;
        while i + from.len() <= buf.len() {
            if &buf[i..i + from.len()] == from {
                buf[i..i + to.len()].copy_from_slice(to);
                n += 1;
                i += from.len();
            } else {
                i += 1;
            }
        }
        n
    }

    /// Offset of the central-directory header of the (last) entry named `name`.
    fn central_header_of(buf: &[u8], name: &[u8]) -> usize {
        let at = buf.windows(name.len()).rposition(|w| w == name).unwrap();
        let header = at - CENTRAL_LEN;
        assert_eq!(u32_at(buf, header), CENTRAL_SIG);
        header
    }

    /// Rewrites a plain zip's end record as ZIP64 (EOCD64 + locator + EOCD
    /// with every field saturated).
    fn to_zip64(mut buf: Vec<u8>) -> Vec<u8> {
        let eocd = buf.len() - EOCD_LEN as usize;
        assert_eq!(u32_at(&buf, eocd), EOCD_SIG);
        let entries = u64::from(u16_at(&buf, eocd + 10));
        let size = u64::from(u32_at(&buf, eocd + 12));
        let offset = u64::from(u32_at(&buf, eocd + 16));
        buf.truncate(eocd);
        let eocd64_at = buf.len() as u64;
        buf.extend_from_slice(&EOCD64_SIG.to_le_bytes());
        buf.extend_from_slice(&44u64.to_le_bytes());
        buf.extend_from_slice(&45u16.to_le_bytes());
        buf.extend_from_slice(&45u16.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&entries.to_le_bytes());
        buf.extend_from_slice(&entries.to_le_bytes());
        buf.extend_from_slice(&size.to_le_bytes());
        buf.extend_from_slice(&offset.to_le_bytes());
        buf.extend_from_slice(&EOCD64_LOCATOR_SIG.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&eocd64_at.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.extend_from_slice(&EOCD_SIG.to_le_bytes());
        buf.extend_from_slice(&[0, 0, 0, 0]);
        buf.extend_from_slice(&[0xFF; 4]);
        buf.extend_from_slice(&[0xFF; 8]);
        buf.extend_from_slice(&[0, 0]);
        buf
    }

    #[test]
    fn stored_and_deflated_contracts_are_found() {
        for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
            assert_eq!(
                find(&jar(method)).unwrap(),
                ZipContract::Entry(CONTRACT.to_vec())
            );
        }
    }

    #[test]
    fn zip_without_the_entry() {
        let z = build(
            &[
                ("META-INF/MANIFEST.MF", b"x", CompressionMethod::Stored),
                (
                    "META-INF/pipeline/pipeline-contract.json.bak",
                    CONTRACT,
                    CompressionMethod::Stored,
                ),
                (
                    "meta-inf/pipeline/pipeline-contract.json",
                    CONTRACT,
                    CompressionMethod::Stored,
                ),
            ],
            None,
        );
        assert_eq!(find(&z).unwrap(), ZipContract::NoEntry);
        assert_eq!(find(&build(&[], None)).unwrap(), ZipContract::NoEntry);
    }

    #[test]
    fn non_zip_files_have_no_contract() {
        for bytes in [
            &b""[..],
            b"hello world",
            b"#!/bin/sh\necho not a zip, not even close to being one at all\n",
            b"PK\x05\x06 trailing junk but no real directory",
            &[0u8; 100],
        ] {
            assert_eq!(find(bytes).unwrap(), ZipContract::NotZip, "{bytes:?}");
        }
        // A truncated zip: the end record is gone.
        let z = jar(CompressionMethod::Stored);
        assert_eq!(find(&z[..z.len() - 10]).unwrap(), ZipContract::NotZip);
    }

    #[test]
    fn entry_present_twice_is_contract_invalid() {
        let x = "META-INF/pipeline/pipeline-contract.jsoX";
        let y = "META-INF/pipeline/pipeline-contract.jsoY";
        let mut z = build(
            &[
                (x, CONTRACT, CompressionMethod::Stored),
                (y, b"{}", CompressionMethod::Deflated),
            ],
            None,
        );
        assert_eq!(
            replace_all(&mut z, x.as_bytes(), CONTRACT_ENTRY.as_bytes()),
            2
        );
        assert_eq!(
            replace_all(&mut z, y.as_bytes(), CONTRACT_ENTRY.as_bytes()),
            2
        );
        let e = find(&z).unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractInvalid);
        assert!(e.message.contains("twice"), "{}", e.message);
    }

    #[test]
    fn encrypted_or_unsupported_method_is_contract_invalid() {
        let mut z = jar(CompressionMethod::Stored);
        let h = central_header_of(&z, CONTRACT_ENTRY.as_bytes());
        z[h + 8] |= 1;
        let e = find(&z).unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractInvalid);
        assert!(e.message.contains("encrypted"), "{}", e.message);

        let mut z = jar(CompressionMethod::Stored);
        let h = central_header_of(&z, CONTRACT_ENTRY.as_bytes());
        z[h + 10] = 12; // bzip2
        let e = find(&z).unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractInvalid);
        assert!(
            e.message.contains("neither stored nor deflated"),
            "{}",
            e.message
        );
    }

    #[test]
    fn oversized_contract_is_contract_invalid() {
        let big = vec![b' '; MAX_CONTRACT_BYTES + 1];
        let z = build(&[(CONTRACT_ENTRY, &big, CompressionMethod::Stored)], None);
        let e = find(&z).unwrap_err();
        assert_eq!(e.code, ErrorCode::ContractInvalid);
        assert!(e.message.contains("larger"), "{}", e.message);
        let z = build(&[(CONTRACT_ENTRY, &big, CompressionMethod::Deflated)], None);
        assert_eq!(find(&z).unwrap_err().code, ErrorCode::ContractInvalid);
        let exact = vec![b' '; MAX_CONTRACT_BYTES];
        let z = build(&[(CONTRACT_ENTRY, &exact, CompressionMethod::Stored)], None);
        assert_eq!(find(&z).unwrap(), ZipContract::Entry(exact));
    }

    #[test]
    fn corrupt_entry_data_is_contract_invalid() {
        let mut z = jar(CompressionMethod::Stored);
        // Flip a byte of the stored contract: the CRC no longer matches.
        let at = z
            .windows(CONTRACT.len())
            .position(|w| w == CONTRACT)
            .unwrap();
        z[at + 3] ^= 0x20;
        assert_eq!(find(&z).unwrap_err().code, ErrorCode::ContractInvalid);
    }

    #[test]
    fn zip64_end_records_are_read() {
        let z = to_zip64(jar(CompressionMethod::Deflated));
        assert_eq!(find(&z).unwrap(), ZipContract::Entry(CONTRACT.to_vec()));
        let z = to_zip64(build(&[("a.txt", b"a", CompressionMethod::Stored)], None));
        assert_eq!(find(&z).unwrap(), ZipContract::NoEntry);
    }

    #[test]
    fn comments_and_launcher_prefixes_are_tolerated() {
        // A comment holding a fake end-of-central-directory signature.
        let mut comment = b"note ".to_vec();
        comment.extend_from_slice(&EOCD_SIG.to_le_bytes());
        comment.extend_from_slice(&[0xFF; 18]);
        let z = build(
            &[(CONTRACT_ENTRY, CONTRACT, CompressionMethod::Deflated)],
            Some(&comment),
        );
        assert_eq!(find(&z).unwrap(), ZipContract::Entry(CONTRACT.to_vec()));
        // An executable jar: a shell script before the archive.
        let mut prefixed = b"#!/bin/sh\nexec java -jar \"$0\" \"$@\"\n".to_vec();
        prefixed.extend_from_slice(&jar(CompressionMethod::Deflated));
        assert_eq!(
            find(&prefixed).unwrap(),
            ZipContract::Entry(CONTRACT.to_vec())
        );
    }

    struct Failing;

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    impl Seek for Failing {
        fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
            Ok(1000)
        }
    }

    #[test]
    fn read_errors_are_artifact_unreadable() {
        let e = find_contract(Failing).unwrap_err();
        assert_eq!(e.code, ErrorCode::ArtifactUnreadable);
        assert!(!e.message.contains("fire"));
    }
}
