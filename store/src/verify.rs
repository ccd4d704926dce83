//! Checks of copies before anything points to them or serves them: [`check_copy`] compares a copy's bytes with the
//! catalog's size and crc32c; [`s3_etag`] computes the checksum an S3 server reports for an upload, so a move can
//! check an upload by the server's own checksum instead of reading every byte back (`cold.verify = "auto"`).
//!
//! S3 (and the S3-compatible servers that follow it, moto among them) gives a single PUT the ETag
//! `"<hex MD5 of the bytes>"`, computed by the server from the bytes it received, and a multipart upload the ETag
//! `"<hex MD5 of the concatenated binary MD5s of the parts>-<number of parts>"`. An upload whose ETag equals the
//! one computed here was received intact. Servers that do not follow this (SSE-KMS and SSE-C objects, GCS, Azure,
//! `file://`, `memory://`) answer something else: a mismatch proves nothing either way, and the caller reads the
//! object back instead.

use md5::{Digest, Md5};

use crate::catalog::SegmentMeta;
use crate::error::{Result, StoreError};
use crate::layout::Location;

/// Checks a copy's bytes against the catalog's size and crc32c; a mismatch is counted and logged, never used.
pub fn check_copy(meta: &SegmentMeta, location: &Location, bytes: &[u8]) -> Result<()> {
    let crc = crc32c::crc32c(bytes);
    if bytes.len() as u64 != meta.bytes || crc != meta.checksum {
        metrics::counter!("tierd_checksum_mismatches_total", "tier" => location.tier.label()).increment(1);
        tracing::error!(
            segment = %meta.id,
            location = %location.path,
            len = bytes.len(),
            expected_len = meta.bytes,
            crc,
            expected_crc = meta.checksum,
            "copy does not match the catalog"
        );
        return Err(StoreError::Corrupt {
            id: meta.id,
            message: format!(
                "{} copy {} has {} bytes, crc32c {crc:08x}; the catalog says {} bytes, crc32c {:08x}",
                location.tier.label(),
                location.path,
                bytes.len(),
                meta.bytes,
                meta.checksum
            ),
        });
    }
    Ok(())
}

/// The ETag S3 gives `bytes` uploaded in one PUT (`part_size = None`) or in parts of `part_size` bytes (every part
/// that size but the last): lowercase hex, without quotes.
pub fn s3_etag(bytes: &[u8], part_size: Option<u64>) -> String {
    match part_size {
        None => hex(&Md5::digest(bytes)),
        Some(size) => {
            assert!(size > 0, "part size must be positive");
            let mut of_parts = Md5::new();
            let mut parts = 0usize;
            for part in bytes.chunks(size as usize) {
                of_parts.update(Md5::digest(part));
                parts += 1;
            }
            if bytes.is_empty() {
                // An empty multipart upload still has one (empty) part.
                of_parts.update(Md5::digest([]));
                parts = 1;
            }
            format!("{}-{parts}", hex(&of_parts.finalize()))
        }
    }
}

/// Whether a server's ETag (quoted or not, any case) is `expected` ([`s3_etag`]).
pub fn etag_matches(e_tag: &str, expected: &str) -> bool {
    e_tag.trim().trim_matches('"').eq_ignore_ascii_case(expected)
}

/// Whether an ETag has the shape of an S3 MD5 ETag (32 hex digits, optionally `-<parts>`): only then is computing
/// [`s3_etag`] worth its CPU.
pub fn looks_like_s3_md5(e_tag: &str) -> bool {
    let t = e_tag.trim().trim_matches('"');
    let (digest, parts) = match t.split_once('-') {
        Some((d, n)) => (d, Some(n)),
        None => (t, None),
    };
    digest.len() == 32
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
        && parts.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_put_etag_is_the_md5() {
        // RFC 1321's test vectors.
        assert_eq!(s3_etag(b"", None), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(s3_etag(b"abc", None), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            s3_etag(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890", None),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        // "abc" in parts of 2 bytes: MD5("ab") || MD5("c"), hashed, "-2".
        let ab: [u8; 16] = Md5::digest(b"ab").into();
        let c: [u8; 16] = Md5::digest(b"c").into();
        let expected = format!("{}-2", hex(&Md5::digest([ab, c].concat())));
        assert_eq!(s3_etag(b"abc", Some(2)), expected);
        // One part: the MD5 of the part's MD5.
        assert_eq!(s3_etag(b"abc", Some(3)), format!("{}-1", hex(&Md5::digest(Md5::digest(b"abc")))));
        assert_ne!(s3_etag(b"abc", Some(2)), s3_etag(b"abd", Some(2)));
    }

    #[test]
    fn etags_compare_without_quotes_or_case() {
        let e = s3_etag(b"abc", None);
        assert!(etag_matches("\"900150983CD24FB0D6963F7D28E17F72\"", &e));
        assert!(etag_matches("900150983cd24fb0d6963f7d28e17f72", &e));
        assert!(!etag_matches("\"900150983cd24fb0d6963f7d28e17f73\"", &e));
        assert!(!etag_matches("3-1a2b-400", &e), "a file:// ETag (inode-mtime-size)");
        assert!(looks_like_s3_md5("\"900150983cd24fb0d6963f7d28e17f72\""));
        assert!(looks_like_s3_md5("900150983cd24fb0d6963f7d28e17f72-12"));
        assert!(!looks_like_s3_md5("3-1a2b-400"));
        assert!(!looks_like_s3_md5("7"), "memory:// counts its puts");
        assert!(!looks_like_s3_md5("900150983cd24fb0d6963f7d28e17f72-"));
    }
}
