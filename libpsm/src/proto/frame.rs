//! Framing: `u32` big-endian length, then a postcard body of that length.

use super::msg::{REQUEST_KINDS, RequestFrame, ServerFrame};
use std::fmt;

/// Largest frame body either side accepts. A peer announcing more is
/// dropped: the length is checked before any buffer is sized from it.
pub const MAX_FRAME: usize = 1024 * 1024;

const LEN_BYTES: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`]; the connection is unusable.
    Oversized { len: u64 },
    /// Not even a request id could be read: the connection is unusable.
    Garbage,
    /// A request id was read but the request kind is unknown to this build.
    UnknownKind { id: u64, kind: u32 },
    /// A request id was read but the rest does not decode (or has bytes left over).
    Malformed { id: u64 },
    /// A server frame that does not decode.
    BadServerFrame,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Oversized { len } => {
                write!(f, "frame of {len} bytes exceeds the {MAX_FRAME}-byte limit")
            }
            FrameError::Garbage => f.write_str("frame does not start with a request id"),
            FrameError::UnknownKind { kind, .. } => write!(f, "unknown request kind {kind}"),
            FrameError::Malformed { .. } => f.write_str("malformed request body"),
            FrameError::BadServerFrame => f.write_str("malformed frame from psmd"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame (length prefix + body) to `out`.
pub fn encode_frame<T: serde::Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    let grown = postcard::to_extend(msg, std::mem::take(out));
    *out = match grown {
        Ok(v) => v,
        Err(_) => return Err(FrameError::Garbage),
    };
    let len = out.len() - start - LEN_BYTES;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(FrameError::Oversized { len: len as u64 });
    }
    out[start..start + LEN_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

pub fn encode_request(frame: &RequestFrame, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_frame(frame, out)
}

pub fn encode_server_frame(frame: &ServerFrame, out: &mut Vec<u8>) -> Result<(), FrameError> {
    encode_frame(frame, out)
}

/// Decodes a whole frame body into exactly one value: trailing bytes are an
/// error, so a frame means one thing only.
fn decode_exact<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

/// Decodes a request frame body. Errors carry the request id when one could
/// be read, so the daemon can answer it instead of dropping the connection.
pub fn decode_request(body: &[u8]) -> Result<RequestFrame, FrameError> {
    if let Some(frame) = decode_exact::<RequestFrame>(body) {
        return Ok(frame);
    }
    let Ok((id, rest)) = postcard::take_from_bytes::<u64>(body) else {
        return Err(FrameError::Garbage);
    };
    match postcard::take_from_bytes::<u32>(rest) {
        Ok((kind, _)) if kind >= REQUEST_KINDS => Err(FrameError::UnknownKind { id, kind }),
        _ => Err(FrameError::Malformed { id }),
    }
}

pub fn decode_server_frame(body: &[u8]) -> Result<ServerFrame, FrameError> {
    decode_exact(body).ok_or(FrameError::BadServerFrame)
}

/// Splits a byte stream into frame bodies. The caller feeds it whatever it
/// read; it never holds more than one partial frame plus what was fed.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Bytes held (partial or complete frames not yet taken).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends bytes read from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame body, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let avail = &self.buf[self.start..];
        if avail.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::Oversized { len: len as u64 });
        }
        if avail.len() < LEN_BYTES + len {
            return Ok(None);
        }
        let body_start = self.start + LEN_BYTES;
        self.start = body_start + len;
        Ok(Some(&self.buf[body_start..body_start + len]))
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Code, Error};
    use crate::proto::{
        CertInfo, CertUsage, Event, HashAlg, KeyKind, Prompt, PromptKind, Reply, Request, SMIME_CBC,
        SMIME_DER, SMIME_DETACHED, SMIME_VERIFY_INNER, Secret, SigKind, SmimeInfo, SmimeOp, SslOpts,
        TOKEN_LOGIN_REQUIRED, TokenInfo, Verification,
    };

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Hello { version_min: 1, version_max: 3, app_name: "mail".into(), flags: 3 },
            Request::Ping,
            Request::Status,
            Request::Random { len: 32 },
            Request::Digest { alg: HashAlg::Sha384, data: vec![1, 2, 3] },
            Request::DigestStream { alg: HashAlg::Sha1 },
            Request::ChannelFinish { channel: 7 },
            Request::ChannelClose { channel: u64::MAX },
            Request::DebugSleep { ms: 5 },
            Request::CertImport { data: b"-----BEGIN".to_vec(), nickname: Some("n".into()), trust: 5 },
            Request::CertFind { query: "sha256:00".into() },
            Request::CertList { filter: 3 },
            Request::CertChangeTrust { sha256_hex: "ab".into(), set: 1, clear: 2 },
            Request::CertDelete { sha256_hex: "ab".into(), with_key: true },
            Request::CertVerify { der: vec![0x30], usage: CertUsage::EmailSigner, name: None, at: -5 },
            Request::CrlImport { data: vec![1, 2] },
            Request::TokenLogin { password: Some(Secret("pw".into())) },
            Request::TokenLogout,
            Request::TokenSetPassword { old: None, new: Some(Secret(String::new())) },
            Request::KeyGenerate {
                kind: KeyKind::Rsa3072,
                subject_dn: "CN=x".into(),
                nickname: None,
                sans: vec!["dns:a".into()],
            },
            Request::KeySign { sha256_hex: "ab".into(), alg: SigKind::RsaPssSha256, data: vec![9; 40] },
            Request::Pkcs12Import { data: vec![0x30], password: None },
            Request::Pkcs12Export { sha256_hex: "ab".into(), password: Some(Secret("x".into())) },
            Request::SdrEncrypt { data: b"secret".to_vec() },
            Request::SdrDecrypt { data: vec![1] },
            Request::SslConnect { host: "example.com".into(), port: 443, opts: sample_opts() },
            Request::SslWrapFd { server_name: "h".into(), opts: SslOpts::default() },
            Request::SslAcceptFd { sha256_hex: "ab".into(), opts: sample_opts() },
            Request::TlsOpenPlain { host: "::1".into(), port: 25, opts: SslOpts::default() },
            Request::SslStepUp { channel: 3 },
            Request::SslInfo { channel: 3 },
            Request::SslPeerCerts { channel: 3 },
            Request::SetPromptHandler { enabled: true },
            Request::PromptAnswer { id: 4, answer: Some(Secret("once".into())) },
            Request::SmimeSign { signer: "sha256:ab".into(), flags: SMIME_DETACHED, data: b"body".to_vec() },
            Request::SmimeVerify {
                data: vec![0x30, 0x80],
                content: Some(serde_bytes::ByteBuf::from(b"c".to_vec())),
                from: Some("a@example.com".into()),
                flags: 0,
            },
            Request::SmimeEncrypt { recipients: vec!["bob".into()], flags: SMIME_CBC, data: vec![1] },
            Request::SmimeDecrypt { data: vec![2], from: None, flags: SMIME_VERIFY_INNER },
            Request::SmimeCertsOnly { certs: vec!["a".into(), "b".into()], flags: SMIME_DER },
            Request::SmimeReadCerts { data: vec![3] },
            Request::PolicyReload,
            Request::OverrideList,
            Request::OverrideDelete { host: "example.com".into(), port: 443 },
            Request::PolicyCheck { text: "[tls]\nmin_version = \"1.3\"\n".into() },
            Request::CertView { sha256_hex: "ab".repeat(32) },
            Request::SslShowInfo { channel: 7 },
            Request::ConfigCheck { text: "[token]\nidle_timeout_secs = 60\n".into() },
            Request::SmimeShowInfo { result_id: 9 },
            Request::KeyCsr {
                sha256_hex: "cd".repeat(32),
                subject_dn: "CN=x".into(),
                sans: vec!["dns:x".into()],
            },
            Request::TokenList,
            Request::TokenLoginTo { token: "pkcs11:token=a".into(), pin: Some(Secret("1234".into())) },
            Request::TokenLogoutFrom { token: "pkcs11:token=a".into() },
            Request::SmimeStream {
                op: SmimeOp::Verify { signature: Some(serde_bytes::ByteBuf::from(vec![4])), from: None },
                flags: 0,
            },
        ]
    }

    fn sample_opts() -> SslOpts {
        SslOpts {
            alpn: vec![serde_bytes::ByteBuf::from(b"h2".to_vec())],
            client_cert: Some("me".into()),
            min_version: crate::proto::TLS_1_3,
            proxy: Some("proxy:3128".into()),
            timeout_ms: 500,
        }
    }

    fn sample_cert() -> CertInfo {
        CertInfo {
            der: vec![0x30, 0x82],
            nickname: "Alice".into(),
            subject: "CN=Alice".into(),
            issuer: "CN=CA".into(),
            serial_hex: "01".into(),
            sha256_hex: "aa".into(),
            sha1_hex: "bb".into(),
            emails: vec!["alice@example.com".into()],
            dns_names: vec![],
            ip_addresses: vec!["192.0.2.1".into()],
            not_before: -1,
            not_after: 1 << 40,
            is_ca: false,
            key_usage: Some(5),
            ext_key_usage: Some(vec!["emailProtection".into()]),
            has_private_key: true,
            trust: 0x21,
            builtin: false,
            token: String::new(),
            uri: String::new(),
        }
    }

    fn body_of(frame: &[u8]) -> &[u8] {
        &frame[LEN_BYTES..]
    }

    #[test]
    fn every_request_round_trips() {
        let reqs = all_requests();
        assert_eq!(reqs.len() as u32, REQUEST_KINDS, "KINDS must count every variant");
        for (i, request) in reqs.into_iter().enumerate() {
            let frame = RequestFrame { id: i as u64 * 1_000_003, request };
            let mut out = Vec::new();
            encode_request(&frame, &mut out).unwrap();
            assert_eq!(u32::from_be_bytes(out[..4].try_into().unwrap()) as usize, out.len() - 4);
            assert_eq!(decode_request(body_of(&out)).unwrap(), frame);
        }
    }

    #[test]
    fn every_server_frame_round_trips() {
        let frames = vec![
            ServerFrame::Reply { id: 1, result: Ok(Reply::Pong) },
            ServerFrame::Reply {
                id: 2,
                result: Ok(Reply::Hello { daemon_version: "0.1.0".into(), session_id: 9, version: 1 }),
            },
            ServerFrame::Reply { id: 3, result: Ok(Reply::Status { json: "{}".into() }) },
            ServerFrame::Reply { id: 4, result: Ok(Reply::Bytes(vec![0; 300])) },
            ServerFrame::Reply { id: 5, result: Ok(Reply::Channel { channel: 1 }) },
            ServerFrame::Reply { id: 6, result: Ok(Reply::Done) },
            ServerFrame::Reply { id: 8, result: Ok(Reply::Certs(vec![sample_cert()])) },
            ServerFrame::Reply {
                id: 9,
                result: Ok(Reply::Verification(Verification {
                    status: Code::PSM_ERR_CERT_REVOKED,
                    detail: "revoked".into(),
                    chain: vec![sample_cert(), sample_cert()],
                })),
            },
            ServerFrame::Reply { id: 7, result: Err(Error::new(Code::PSM_ERR_CERT_EXPIRED, "x")) },
            ServerFrame::Reply {
                id: 10,
                result: Ok(Reply::Smime(Box::new(SmimeInfo {
                    status: Code::PSM_ERR_SMIME_ADDRESS_MISMATCH,
                    detail: "for b@example.com".into(),
                    signed: true,
                    encrypted: true,
                    signer: Some(sample_cert()),
                    chain: vec![sample_cert()],
                    signing_time: 1_800_000_000,
                    status_now: Code::PSM_ERR_CERT_EXPIRED,
                    digest: "sha256".into(),
                    cipher: "AuthEnvelopedData".into(),
                    content: serde_bytes::ByteBuf::from(b"hi".to_vec()),
                    result_id: 3,
                }))),
            },
            ServerFrame::Reply { id: 11, result: Ok(Reply::Problems(vec![(2, "unknown key".into())])) },
            ServerFrame::Reply {
                id: 12,
                result: Ok(Reply::Tokens(vec![TokenInfo {
                    uri: "pkcs11:token=a".into(),
                    label: "a".into(),
                    manufacturer: "m".into(),
                    model: "x".into(),
                    serial: "1".into(),
                    module: "/usr/lib/p.so".into(),
                    module_description: "p".into(),
                    slot: 3,
                    slot_description: "s".into(),
                    flags: TOKEN_LOGIN_REQUIRED,
                }])),
            },
            ServerFrame::Event(Event::Shutdown { reason: "SIGTERM".into() }),
            ServerFrame::Event(Event::Dialog {
                id: 1,
                width: 400,
                height: 300,
                modal: true,
                url: "http://127.0.0.1:1/".into(),
            }),
            ServerFrame::Event(Event::DialogDone { id: 1 }),
            ServerFrame::Event(Event::StoreChanged),
            ServerFrame::Event(Event::TokenChanged),
            ServerFrame::Event(Event::PolicyChanged),
            ServerFrame::Reply { id: 10, result: Ok(Reply::Json("{}".into())) },
            ServerFrame::Event(Event::Prompt(Prompt {
                id: 2,
                kind: PromptKind::ServerTrust,
                message: "?".into(),
                details_json: "{}".into(),
                choices: vec!["once".into(), "reject".into()],
            })),
        ];
        for frame in frames {
            let mut out = Vec::new();
            encode_server_frame(&frame, &mut out).unwrap();
            assert_eq!(decode_server_frame(body_of(&out)).unwrap(), frame);
        }
    }

    #[test]
    fn truncated_request_is_malformed_with_its_id() {
        let frame =
            RequestFrame { id: 42, request: Request::Digest { alg: HashAlg::Sha256, data: vec![7; 100] } };
        let mut out = Vec::new();
        encode_request(&frame, &mut out).unwrap();
        let body = body_of(&out);
        for cut in 2..body.len() {
            assert_eq!(decode_request(&body[..cut]), Err(FrameError::Malformed { id: 42 }), "cut {cut}");
        }
    }

    #[test]
    fn empty_or_bad_varint_body_is_garbage() {
        assert_eq!(decode_request(&[]), Err(FrameError::Garbage));
        // A varint whose continuation bit never ends.
        assert_eq!(decode_request(&[0xff; 11]), Err(FrameError::Garbage));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut out = Vec::new();
        encode_request(&RequestFrame { id: 5, request: Request::Ping }, &mut out).unwrap();
        let mut body = body_of(&out).to_vec();
        body.push(0);
        assert_eq!(decode_request(&body), Err(FrameError::Malformed { id: 5 }));

        let mut out = Vec::new();
        encode_server_frame(&ServerFrame::Reply { id: 1, result: Ok(Reply::Pong) }, &mut out).unwrap();
        let mut body = body_of(&out).to_vec();
        body.push(0);
        assert_eq!(decode_server_frame(&body), Err(FrameError::BadServerFrame));
    }

    #[test]
    fn unknown_request_kind_is_reported_with_its_id() {
        // id 9, variant index 200 (varint 0xc8 0x01): a newer client's request.
        assert_eq!(decode_request(&[9, 0xc8, 0x01]), Err(FrameError::UnknownKind { id: 9, kind: 200 }));
        assert_eq!(
            decode_request(&[9, REQUEST_KINDS as u8]),
            Err(FrameError::UnknownKind { id: 9, kind: REQUEST_KINDS })
        );
    }

    #[test]
    fn unknown_server_frame_variant_is_rejected() {
        assert_eq!(decode_server_frame(&[7]), Err(FrameError::BadServerFrame));
        assert_eq!(decode_server_frame(&[1, 99]), Err(FrameError::BadServerFrame));
    }

    #[test]
    fn hostile_inner_length_does_not_allocate_or_panic() {
        // Hello whose app_name claims 2^32 bytes: must fail, not allocate.
        let body = [1u8, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'];
        assert_eq!(decode_request(&body), Err(FrameError::Malformed { id: 1 }));
    }

    #[test]
    fn reader_reassembles_frames_fed_byte_by_byte() {
        let mut wire = Vec::new();
        for id in 0..3 {
            encode_request(&RequestFrame { id, request: Request::Ping }, &mut wire).unwrap();
        }
        let mut reader = FrameReader::new();
        let mut got = Vec::new();
        for b in &wire {
            reader.push(std::slice::from_ref(b));
            while let Some(body) = reader.next_frame().unwrap() {
                got.push(decode_request(body).unwrap().id);
            }
        }
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn reader_rejects_oversized_length_before_buffering_the_body() {
        let mut reader = FrameReader::new();
        reader.push(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(reader.next_frame(), Err(FrameError::Oversized { len: 0xffff_ffff }));
        let mut reader = FrameReader::new();
        reader.push(&((MAX_FRAME as u32 + 1).to_be_bytes()));
        assert!(matches!(reader.next_frame(), Err(FrameError::Oversized { .. })));
    }

    #[test]
    fn reader_accepts_a_frame_of_exactly_max_size_and_zero_size() {
        let mut reader = FrameReader::new();
        reader.push(&(MAX_FRAME as u32).to_be_bytes());
        reader.push(&vec![0u8; MAX_FRAME]);
        assert_eq!(reader.next_frame().unwrap().map(|b| b.len()), Some(MAX_FRAME));
        reader.push(&[0, 0, 0, 0]);
        assert_eq!(reader.next_frame().unwrap(), Some(&[][..]));
    }

    #[test]
    fn encoder_refuses_to_build_an_oversized_frame() {
        let frame = ServerFrame::Reply { id: 1, result: Ok(Reply::Bytes(vec![0; MAX_FRAME])) };
        let mut out = vec![1, 2, 3];
        assert!(matches!(encode_server_frame(&frame, &mut out), Err(FrameError::Oversized { .. })));
        assert_eq!(out, vec![1, 2, 3], "a refused frame leaves the buffer as it was");
    }
}

#[cfg(test)]
mod secret_tests {
    use crate::proto::{Request, Secret};

    #[test]
    fn passwords_never_show_in_debug_output() {
        let r = Request::TokenLogin { password: Some(Secret("hunter2".into())) };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
