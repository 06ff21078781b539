//! Reading a message of any size in bounded memory. OpenSSL parses a CMS
//! structure whole, so a 1 GB signed or encrypted message would cost 1 GB
//! of psmd's memory. Instead, the message is walked as BER as it arrives:
//! the one large field (a SignedData's eContent, an (Auth)EnvelopedData's
//! encryptedContent) goes to an unnamed temporary file, everything else
//! (algorithms, certificates, recipients, signatures: small, and bounded by
//! [`MAX_REST`]) is kept and re-encoded into the same structure with its
//! content detached. OpenSSL then checks or decrypts that structure with
//! the content read back from the file as detached content, writing its
//! output as it goes.
//!
//! Input may be DER/BER, PEM, or an opaque S/MIME entity
//! (`application/pkcs7-mime`, base64). A multipart/signed entity is not
//! handled here (its signed part precedes the signature and is MIME, not
//! BER); callers read those in memory.

use psm::{Code, Error};
use std::io::{self, BufRead, Read, Seek, Write};

/// Everything of a message but its content, kept in memory.
pub const MAX_REST: usize = 32 * 1024 * 1024;
/// Largest content spooled to disk.
pub const MAX_SPOOL: u64 = 4 << 30;
/// Nesting of BER containers walked.
const MAX_DEPTH: usize = 32;
/// Longest MIME header block of an opaque S/MIME entity.
const MAX_MIME_HEADERS: usize = 64 * 1024;

fn bad(m: impl Into<String>) -> Error {
    Error::new(Code::PSM_ERR_DECODE, m)
}

fn io_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("the message ends too early (truncated)")
    } else {
        Error::io("reading the message", e)
    }
}

/// How a streamed message is encoded, told from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Der,
    Pem,
    /// An opaque S/MIME entity: MIME headers, then base64.
    Smime,
    /// Anything else (multipart/signed): not streamable here.
    Other,
}

/// Classifies a message by its first bytes (at least a few hundred, or all).
pub fn framing(head: &[u8]) -> Framing {
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let body = &head[start..];
    if body.first() == Some(&0x30) {
        return Framing::Der;
    }
    if body.starts_with(b"-----BEGIN") {
        return Framing::Pem;
    }
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let headers_end = text.find("\r\n\r\n").or_else(|| text.find("\n\n")).unwrap_or(text.len());
    let headers = &text[..headers_end];
    if (headers.contains("application/pkcs7-mime") || headers.contains("application/x-pkcs7-mime"))
        && headers.contains("base64")
        && !headers.contains("multipart/")
    {
        Framing::Smime
    } else {
        Framing::Other
    }
}

/// Decodes base64 as it is read, skipping line breaks and white space,
/// up to a line starting with '-' (a PEM footer) or the end of input.
struct Base64Reader<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    done: bool,
    /// Characters of an incomplete quantum, for the next round.
    carry: Vec<u8>,
}

impl<R: BufRead> Base64Reader<R> {
    fn new(inner: R) -> Self {
        Base64Reader { inner, out: Vec::new(), pos: 0, done: false, carry: Vec::new() }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let mut text = std::mem::take(&mut self.carry);
        while !self.done && text.len() < 48 * 1024 {
            let mut line = Vec::new();
            let n = (&mut self.inner).take(16 * 1024).read_until(b'\n', &mut line)?;
            if n == 0 {
                self.done = true;
                break;
            }
            if line.first() == Some(&b'-') {
                self.done = true;
                break;
            }
            text.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
        // Decode whole quanta; keep a partial one for the next round.
        let whole = if self.done { text.len() } else { text.len() / 4 * 4 };
        self.carry = text.split_off(whole);
        if whole > 0 {
            self.out = openssl::base64::decode_block(std::str::from_utf8(&text[..whole]).unwrap_or("!"))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the message's base64 is damaged"))?;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Base64Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done && self.pos == self.out.len() {
                return Ok(0);
            }
            self.refill()?;
            if self.out.is_empty() && self.done {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A BER reader that counts what it has read and what it keeps.
struct Ber<R> {
    r: R,
    kept: usize,
    /// Bytes read so far.
    pos: u64,
    /// Content bytes written to the spool.
    spooled: u64,
}

#[derive(Clone, Copy)]
struct Header {
    tag: u8,
    /// None: indefinite length.
    len: Option<u64>,
}

impl Header {
    fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

impl<R: Read> Ber<R> {
    fn byte(&mut self) -> Result<u8, Error> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(io_err)?;
        self.pos += 1;
        Ok(b[0])
    }

    /// Where a container that starts now (after its header) ends; None
    /// for an indefinite one (it ends at its end-of-contents octets).
    fn end_of(&self, h: Header) -> Option<u64> {
        h.len.map(|n| self.pos.saturating_add(n))
    }

    /// Whether the container ending at `end` has more elements; for an
    /// indefinite one, reads the next header (None at end-of-contents).
    fn next_in(&mut self, end: Option<u64>) -> Result<Option<Header>, Error> {
        match end {
            Some(e) if self.pos >= e => {
                if self.pos > e {
                    return Err(bad("an element runs past the end of its container"));
                }
                Ok(None)
            }
            Some(_) => self.header().map(Some),
            None => {
                let h = self.header()?;
                Ok((!(h.tag == 0 && h.len == Some(0))).then_some(h))
            }
        }
    }

    fn header(&mut self) -> Result<Header, Error> {
        let tag = self.byte()?;
        if tag & 0x1f == 0x1f {
            return Err(bad("a high tag number where CMS has none"));
        }
        let first = self.byte()?;
        let len = match first {
            0x80 => None,
            l if l < 0x80 => Some(u64::from(l)),
            l => {
                let n = usize::from(l & 0x7f);
                if n > 8 {
                    return Err(bad("a length of more than 8 bytes"));
                }
                let mut v: u64 = 0;
                for _ in 0..n {
                    v = (v << 8) | u64::from(self.byte()?);
                }
                Some(v)
            }
        };
        let h = Header { tag, len };
        if h.len.is_none() && !h.constructed() {
            return Err(bad("an indefinite length on a primitive value"));
        }
        Ok(h)
    }

    /// Counts `n` more bytes kept in memory, refusing past [`MAX_REST`].
    fn count(&mut self, n: u64) -> Result<usize, Error> {
        let left = (MAX_REST - self.kept) as u64;
        if n > left {
            return Err(bad(format!(
                "the message's fields besides its content exceed {} MiB",
                MAX_REST >> 20
            )));
        }
        self.kept += n as usize;
        Ok(n as usize)
    }

    /// Reads a whole element whose header was read, appending its
    /// encoding (header re-encoded as it came) to `out`.
    fn keep(&mut self, h: Header, out: &mut Vec<u8>, depth: usize) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(bad("BER nested too deep"));
        }
        let before = out.len();
        encode_header(h, out);
        self.count((out.len() - before) as u64)?;
        match h.len {
            Some(n) => {
                let n = self.count(n)?;
                let start = out.len();
                out.resize(start + n, 0);
                self.r.read_exact(&mut out[start..]).map_err(io_err)?;
                self.pos += n as u64;
            }
            None => loop {
                let c = self.header()?;
                if c.tag == 0 && c.len == Some(0) {
                    self.count(2)?;
                    out.extend_from_slice(&[0, 0]);
                    break;
                }
                self.keep(c, out, depth + 1)?;
            },
        }
        Ok(())
    }

    /// Copies the octets of an OCTET STRING (primitive, or constructed from
    /// pieces, as streaming encoders write it) to `sink`.
    fn octets(&mut self, h: Header, sink: &mut dyn Write, depth: usize) -> Result<u64, Error> {
        if depth > MAX_DEPTH {
            return Err(bad("BER nested too deep"));
        }
        if !h.constructed() {
            let n = h.len.unwrap_or(0);
            if self.spooled.saturating_add(n) > MAX_SPOOL {
                return Err(bad(format!("the message's content is larger than {} GiB", MAX_SPOOL >> 30)));
            }
            let copied = io::copy(&mut (&mut self.r).take(n), sink).map_err(io_err)?;
            self.pos += copied;
            self.spooled += copied;
            if copied != n {
                return Err(bad("the message ends inside its content (truncated)"));
            }
            return Ok(n);
        }
        let mut total = 0;
        let end = self.end_of(h);
        while let Some(c) = self.next_in(end)? {
            if c.tag != 0x04 && c.tag != 0x24 {
                return Err(bad("content pieces that are not OCTET STRINGs"));
            }
            total += self.octets(c, sink, depth + 1)?;
        }
        Ok(total)
    }
}

fn encode_header(h: Header, out: &mut Vec<u8>) {
    out.push(h.tag);
    match h.len {
        None => out.push(0x80),
        Some(n) => encode_len(n as usize, out),
    }
}

fn encode_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    encode_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A message with its content moved to `content` (rewound to the start).
pub struct Detached {
    /// The structure without its content (DER outside, the kept fields as
    /// they came).
    pub der: Vec<u8>,
    pub content: std::fs::File,
    pub content_len: u64,
}

/// An unnamed file only this process can reach (O_TMPFILE: gone when
/// closed, even if psmd is killed), in `dir` (the private profile
/// directory, on disk rather than a RAM-backed /tmp) or, where that file
/// system cannot, the temporary directory.
pub fn spool_file(dir: &std::path::Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |d: &std::path::Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .mode(0o600)
            .open(d)
    };
    open(dir)
        .or_else(|_| open(&std::env::temp_dir()))
        .map_err(|e| Error::io("creating a temporary file for the message's content", e))
}

/// Reads a whole message from `input` (framed as `framing`), spooling its
/// content to a temporary file.
pub fn detach(input: impl Read, framing: Framing, spool_dir: &std::path::Path) -> Result<Detached, Error> {
    let mut buffered = io::BufReader::with_capacity(64 * 1024, input);
    match framing {
        Framing::Der => detach_ber(&mut buffered, spool_dir),
        Framing::Pem => {
            // Skip the BEGIN line.
            let mut line = Vec::new();
            (&mut buffered).take(256).read_until(b'\n', &mut line).map_err(io_err)?;
            detach_ber(&mut Base64Reader::new(buffered), spool_dir)
        }
        Framing::Smime => {
            let mut seen = 0;
            loop {
                let mut line = Vec::new();
                let n = (&mut buffered).take(8 * 1024).read_until(b'\n', &mut line).map_err(io_err)?;
                seen += n;
                if n == 0 || seen > MAX_MIME_HEADERS {
                    return Err(bad("the S/MIME entity's headers do not end"));
                }
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    break;
                }
            }
            detach_ber(&mut Base64Reader::new(buffered), spool_dir)
        }
        Framing::Other => Err(bad("not a DER, PEM or opaque S/MIME message")),
    }
}

fn detach_ber(r: &mut dyn Read, spool_dir: &std::path::Path) -> Result<Detached, Error> {
    let mut ber = Ber { r, kept: 0, pos: 0, spooled: 0 };
    let mut content = spool_file(spool_dir)?;
    // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
    let ci = ber.header()?;
    if ci.tag != 0x30 {
        return Err(bad("not a CMS ContentInfo"));
    }
    let oid_h = ber.header()?;
    if oid_h.tag != 0x06 {
        return Err(bad("not a CMS ContentInfo (no content type)"));
    }
    let mut oid = Vec::new();
    ber.keep(oid_h, &mut oid, 1)?;
    let wrap = ber.header()?;
    if wrap.tag != 0xa0 {
        return Err(bad("a CMS ContentInfo without content"));
    }
    // SignedData / EnvelopedData / AuthEnvelopedData ::= SEQUENCE { ... }
    let sd = ber.header()?;
    if sd.tag != 0x30 {
        return Err(bad("the CMS content is not a SEQUENCE"));
    }
    let mut body = Vec::new();
    let mut content_len = 0;
    let mut found = false;
    let end = ber.end_of(sd);
    while let Some(h) = ber.next_in(end)? {
        if !found && h.tag == 0x30 {
            // The (encap/encrypted/authEncrypted)ContentInfo: keep its
            // type and algorithm, spool its content.
            found = true;
            let (kept, n) = detach_content_info(&mut ber, h, &mut content)?;
            content_len = n;
            body.extend_from_slice(&kept);
        } else {
            ber.keep(h, &mut body, 1)?;
        }
    }
    if !found {
        return Err(bad("the CMS content has no content info"));
    }
    // What follows the outer SEQUENCE (end-of-contents octets of the
    // indefinite wrappers) is not needed.
    let der = tlv(0x30, &[oid, tlv(0xa0, &tlv(0x30, &body))].concat());
    content.seek(io::SeekFrom::Start(0)).map_err(|e| Error::io("temporary file", e))?;
    Ok(Detached { der, content, content_len })
}

/// Reads an (encap/encrypted)ContentInfo ::= SEQUENCE { type OID,
/// [algorithm], [0] content }: returns it re-encoded without the content,
/// and the content's length (written to `sink`).
fn detach_content_info(
    ber: &mut Ber<&mut dyn Read>,
    h: Header,
    sink: &mut std::fs::File,
) -> Result<(Vec<u8>, u64), Error> {
    let mut kept = Vec::new();
    let mut n = 0;
    let mut seen_content = false;
    let mut out = io::BufWriter::with_capacity(256 * 1024, &mut *sink);
    let end = ber.end_of(h);
    while let Some(c) = ber.next_in(end)? {
        if matches!(c.tag, 0x80 | 0xa0) {
            if seen_content {
                return Err(bad("a content info with two contents"));
            }
            seen_content = true;
        }
        match c.tag {
            // SignedData: [0] EXPLICIT OCTET STRING.
            0xa0 if kept.first() == Some(&0x06) && !is_enveloped_alg(&kept) => {
                let wrapper_end = ber.end_of(c);
                let inner = ber.header()?;
                if inner.tag != 0x04 && inner.tag != 0x24 {
                    return Err(bad("eContent is not an OCTET STRING"));
                }
                n = ber.octets(inner, &mut out, 2)?;
                if ber.next_in(wrapper_end)?.is_some() {
                    return Err(bad("more than one eContent"));
                }
            }
            // (Auth)EnvelopedData: [0] IMPLICIT OCTET STRING, primitive or constructed.
            0x80 | 0xa0 => n = ber.octets(c, &mut out, 2)?,
            _ => ber.keep(c, &mut kept, 2)?,
        }
    }
    out.flush().map_err(|e| Error::io("temporary file", e))?;
    Ok((tlv(0x30, &kept), n))
}

/// Whether the fields kept so far hold an algorithm (a SEQUENCE after the
/// OID): then a following [0] is an encrypted content, not an eContent.
fn is_enveloped_alg(kept: &[u8]) -> bool {
    // OID TLV, then the next TLV's tag.
    if kept.len() < 2 {
        return false;
    }
    let oid_len = usize::from(kept[1]) + 2;
    kept.get(oid_len) == Some(&0x30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_reader_decodes_across_lines_and_stops_at_a_footer() {
        let text = b"SGVs\nbG8s\r\nIHdv\ncmxkIQ==\n-----END X-----\ntrailing";
        let mut out = Vec::new();
        Base64Reader::new(&text[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"Hello, world!");
    }

    #[test]
    fn framing_is_told_from_the_first_bytes() {
        assert_eq!(framing(b"\x30\x80"), Framing::Der);
        assert_eq!(framing(b"\n-----BEGIN PKCS7-----"), Framing::Pem);
        assert_eq!(
            framing(b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIA"),
            Framing::Smime
        );
        assert_eq!(
            framing(b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"\r\n\r\n"),
            Framing::Other
        );
    }

    #[test]
    fn base64_lines_of_any_length_decode() {
        // 70-character lines (RFC 2045 allows up to 76): quanta straddle
        // both lines and refills.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = openssl::base64::encode_block(&data);
        let mut text = String::new();
        for chunk in b64.as_bytes().chunks(70) {
            text.push_str(std::str::from_utf8(chunk).unwrap());
            text.push_str("\r\n");
        }
        let mut out = Vec::new();
        Base64Reader::new(text.as_bytes()).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    /// A ContentInfo around a SignedData whose body is `fields`, with
    /// indefinite lengths (as streaming encoders write).
    fn signed_with(fields: &[u8]) -> Vec<u8> {
        let mut m = vec![
            0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x30,
            0x80,
        ];
        m.extend_from_slice(fields);
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn what_is_kept_is_bounded_headers_included() {
        // Millions of empty NULLs: no content bytes, but not free to keep.
        let fields: Vec<u8> = std::iter::repeat_n([0x05u8, 0x00], MAX_REST / 2 + 1).flatten().collect();
        let e = detach(&signed_with(&fields)[..], Framing::Der, &std::env::temp_dir()).err().unwrap();
        assert!(e.message.contains("exceed"), "{e}");
        // A hostile length is refused, not added up until it wraps.
        let mut fields = vec![0x02, 0x88];
        fields.extend_from_slice(&[0xff; 8]);
        let e = detach(&signed_with(&fields)[..], Framing::Der, &std::env::temp_dir()).err().unwrap();
        assert_eq!(e.code, Code::PSM_ERR_DECODE, "{e}");
    }

    #[test]
    fn a_content_info_with_two_contents_is_refused() {
        // encapContentInfo { id-data, [0] { OCTET STRING "AAA" }, [0] { OCTET STRING "BBB" } }
        let mut eci = vec![0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
        eci.extend_from_slice(&[0xa0, 0x05, 0x04, 0x03, b'A', b'A', b'A']);
        eci.extend_from_slice(&[0xa0, 0x05, 0x04, 0x03, b'B', b'B', b'B']);
        eci.extend_from_slice(&[0, 0]);
        let mut fields = vec![0x02, 0x01, 0x01, 0x31, 0x00];
        fields.extend_from_slice(&eci);
        let e = detach(&signed_with(&fields)[..], Framing::Der, &std::env::temp_dir()).err().unwrap();
        assert!(e.message.contains("two contents"), "{e}");
    }

    #[test]
    fn lengths_encode_minimally() {
        for (n, want) in [(5usize, vec![5u8]), (200, vec![0x81, 200]), (300, vec![0x82, 1, 44])] {
            let mut v = Vec::new();
            encode_len(n, &mut v);
            assert_eq!(v, want);
        }
    }
}
