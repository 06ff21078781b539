//! S/MIME through the real daemon: sign, verify, encrypt, decrypt,
//! certs-only, streams, and the verdicts on bad messages.

mod common;

use common::Daemon;
use common::certs::{Spec, TestCert, ca, make};
use psm::Code;
use psm::proto::*;

/// A CA trusted for e-mail and two people with keys in psm.
struct Mail {
    d: Daemon,
    c: psm::Client,
    root: TestCert,
    alice: TestCert,
    bob: TestCert,
}

fn p12(t: &TestCert) -> Vec<u8> {
    let p = openssl::pkcs12::Pkcs12::builder().name("k").pkey(&t.key).cert(&t.cert).build2("pw").unwrap();
    p.to_der().unwrap()
}

fn person(root: &TestCert, cn: &str, email: &'static str, serial: u32) -> TestCert {
    let emails: &'static [&'static str] = Box::leak(Box::new([email]));
    make(&Spec { cn, emails, serial, ..Default::default() }, Some(root))
}

impl Mail {
    fn new() -> Mail {
        let d = Daemon::start();
        let c = d.client();
        let root = ca("S/MIME Root");
        c.cert_import(&root.pem(), Some("root"), TRUST_CA_EMAIL).unwrap();
        let alice = person(&root, "Alice", "alice@example.com", 10);
        let bob = person(&root, "Bob", "bob@example.com", 11);
        c.pkcs12_import(&p12(&alice), Some("pw")).unwrap();
        c.pkcs12_import(&p12(&bob), Some("pw")).unwrap();
        Mail { d, c, root, alice, bob }
    }
}

fn sha(t: &TestCert) -> String {
    format!("sha256:{}", t.sha256_hex())
}

const MAIL: &[u8] = b"Content-Type: text/plain; charset=utf-8\n\nHi Bob,\nsee you at 5.\n";
const CANON: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\r\nHi Bob,\r\nsee you at 5.\r\n";

#[test]
fn signed_mail_verifies_in_every_form() {
    let m = Mail::new();
    for flags in [0, SMIME_DETACHED, SMIME_DER, SMIME_PEM, SMIME_SHA384, SMIME_SHA512 | SMIME_DETACHED] {
        let signed = m.c.smime_sign(&sha(&m.alice), flags, MAIL).unwrap();
        let info = m.c.smime_verify(&signed, None, Some("alice@example.com"), 0).unwrap();
        assert_eq!(info.status, Code::PSM_OK, "flags {flags:#x}: {}", info.detail);
        assert_eq!(info.content.as_ref(), CANON);
        assert_eq!(info.signer.as_ref().unwrap().sha256_hex, m.alice.sha256_hex());
        assert!(info.signing_time > 0);
        assert_eq!(info.chain.len(), 2, "leaf and root");
        let wrong = m.c.smime_verify(&signed, None, Some("mallory@example.com"), 0).unwrap();
        assert_eq!(wrong.status, Code::PSM_ERR_SMIME_ADDRESS_MISMATCH, "{}", wrong.detail);
    }
    // A detached DER signature needs its content.
    let sig = m.c.smime_sign(&sha(&m.alice), SMIME_DETACHED | SMIME_DER, MAIL).unwrap();
    let e = m.c.smime_verify(&sig, None, None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT);
    let ok = m.c.smime_verify(&sig, Some(MAIL), None, 0).unwrap();
    assert_eq!(ok.status, Code::PSM_OK, "{}", ok.detail);
    let bad = m.c.smime_verify(&sig, Some(b"Content-Type: text/plain\n\nother\n"), None, 0).unwrap();
    assert_eq!(bad.status, Code::PSM_ERR_SMIME_CONTENT_ALTERED, "{}", bad.detail);
}

#[test]
fn encrypted_mail_decrypts_and_sign_then_encrypt_verifies_in_one_call() {
    let m = Mail::new();
    for flags in [0, SMIME_CBC, SMIME_DER] {
        let enc = m.c.smime_encrypt(&[&sha(&m.bob), &sha(&m.alice)], flags, MAIL).unwrap();
        let info = m.c.smime_decrypt(&enc, None, 0).unwrap();
        assert_eq!(info.content.as_ref(), CANON);
        assert!(info.encrypted && !info.signed);
        let want = if flags & SMIME_CBC != 0 { "EnvelopedData" } else { "AuthEnvelopedData" };
        assert_eq!(info.cipher, want);
    }
    let signed = m.c.smime_sign(&sha(&m.alice), 0, MAIL).unwrap();
    let enc = m.c.smime_encrypt(&[&sha(&m.bob)], 0, &signed).unwrap();
    let info = m.c.smime_decrypt(&enc, Some("alice@example.com"), SMIME_VERIFY_INNER).unwrap();
    assert!(info.encrypted && info.signed);
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    assert_eq!(info.content.as_ref(), CANON);
    assert_eq!(info.signer.unwrap().sha256_hex, m.alice.sha256_hex());
}

#[test]
fn large_messages_stream_through_a_channel() {
    let m = Mail::new();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| b"abcdefghij\n"[(i % 11) as usize]).collect();
    let mut body = b"Content-Type: text/plain\n\n".to_vec();
    body.extend_from_slice(&big);
    for flags in [0, SMIME_DETACHED, SMIME_DER] {
        let signed = m.c.smime_sign(&sha(&m.alice), flags, &body).unwrap();
        let info = m.c.smime_verify(&signed, None, None, 0).unwrap();
        assert_eq!(info.status, Code::PSM_OK, "{flags:#x}: {}", info.detail);
        assert_eq!(info.content.len(), body.len() + big.iter().filter(|&&b| b == b'\n').count() + 2);
    }
    let enc = m.c.smime_encrypt(&[&sha(&m.bob)], SMIME_BINARY, &body).unwrap();
    let info = m.c.smime_decrypt(&enc, None, SMIME_BINARY).unwrap();
    assert_eq!(info.content.as_ref(), &body[..]);
    // A detached signature over a large content given apart.
    let sig = m.c.smime_sign(&sha(&m.alice), SMIME_DETACHED | SMIME_DER | SMIME_BINARY, &body).unwrap();
    let ok = m.c.smime_verify(&sig, Some(&body), None, SMIME_BINARY).unwrap();
    assert_eq!(ok.status, Code::PSM_OK, "{}", ok.detail);
    let mut altered = body.clone();
    altered[2_000_000] ^= 1;
    let bad = m.c.smime_verify(&sig, Some(&altered), None, SMIME_BINARY).unwrap();
    assert_eq!(bad.status, Code::PSM_ERR_SMIME_CONTENT_ALTERED);
}

#[test]
fn certs_only_messages_go_out_and_come_back() {
    let m = Mail::new();
    for flags in [0, SMIME_DER, SMIME_PEM] {
        let p7c = m.c.smime_certs_only(&[&sha(&m.alice), "root"], flags).unwrap();
        let certs = m.c.smime_read_certs(&p7c).unwrap();
        let mut got: Vec<String> = certs.iter().map(|c| c.sha256_hex.clone()).collect();
        got.sort();
        let mut want = vec![m.alice.sha256_hex(), m.root.sha256_hex()];
        want.sort();
        assert_eq!(got, want);
    }
    let _ = &m.d;
}

/// Peak resident memory of a process, in KiB.
fn hwm_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `len` bytes of text, made as they are read.
struct Text {
    left: u64,
    n: u64,
}

impl std::io::Read for Text {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = buf.len().min(self.left as usize);
        for b in &mut buf[..k] {
            *b = if self.n % 64 == 63 { b'\n' } else { b'a' + (self.n % 26) as u8 };
            self.n += 1;
        }
        self.left -= k as u64;
        Ok(k)
    }
}

/// Counts and hashes what is written.
#[derive(Default)]
struct Digest {
    h: sha2::Sha256,
    len: u64,
}

impl std::io::Write for Digest {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        self.h.update(b);
        self.len += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn finish(d: Digest) -> (u64, Vec<u8>) {
    use sha2::Digest as _;
    (d.len, d.h.finalize().to_vec())
}

#[test]
fn a_large_message_streams_through_every_operation_in_bounded_memory() {
    let m = Mail::new();
    let len: u64 =
        std::env::var("PSM_SMIME_STREAM_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 20);
    let mut want = Digest::default();
    std::io::copy(&mut Text { left: len, n: 0 }, &mut want).unwrap();
    let want = finish(want);
    let dir = tempfile::tempdir().unwrap();
    let before = hwm_kib(m.d.pid());
    let stream =
        |op: SmimeOp,
         flags: u32,
         input: &mut (dyn std::io::Read + Send),
         out: &mut (dyn std::io::Write + Send)| { m.c.smime_stream(op, flags, input, out).unwrap() };
    for flags in [SMIME_BINARY | SMIME_DER, SMIME_BINARY, SMIME_BINARY | SMIME_PEM] {
        // Sign, then verify the signed message.
        let path = dir.path().join("signed");
        let mut file = std::fs::File::create(&path).unwrap();
        stream(SmimeOp::Sign { signer: sha(&m.alice) }, flags, &mut Text { left: len, n: 0 }, &mut file);
        let mut got = Digest::default();
        let op = SmimeOp::Verify { signature: None, from: Some("alice@example.com".into()) };
        let info = stream(op, SMIME_BINARY, &mut std::fs::File::open(&path).unwrap(), &mut got).unwrap();
        assert_eq!(info.status, Code::PSM_OK, "{flags:#x}: {}", info.detail);
        assert_eq!(finish(got), want, "{flags:#x}: verified content");
        // Encrypt, then decrypt.
        let path = dir.path().join("enc");
        let mut file = std::fs::File::create(&path).unwrap();
        let op = SmimeOp::Encrypt { recipients: vec![sha(&m.bob)] };
        stream(op, flags, &mut Text { left: len, n: 0 }, &mut file);
        let mut got = Digest::default();
        let info = stream(
            SmimeOp::Decrypt { from: None },
            SMIME_BINARY,
            &mut std::fs::File::open(&path).unwrap(),
            &mut got,
        )
        .unwrap();
        assert!(info.encrypted, "{flags:#x}");
        assert_eq!(finish(got), want, "{flags:#x}: decrypted content");
    }
    // A detached signature over the stream.
    let mut sig = Vec::new();
    stream(
        SmimeOp::Sign { signer: sha(&m.alice) },
        SMIME_BINARY | SMIME_DER | SMIME_DETACHED,
        &mut Text { left: len, n: 0 },
        &mut sig,
    );
    let op = SmimeOp::Verify { signature: Some(ByteBuf::from(sig)), from: None };
    let info = stream(op, SMIME_BINARY, &mut Text { left: len, n: 0 }, &mut std::io::sink()).unwrap();
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    let grown = hwm_kib(m.d.pid()).saturating_sub(before);
    eprintln!(
        "{} MiB through sign, verify, encrypt, decrypt: psmd's peak RSS {before} KiB before, grew by {grown} KiB",
        len >> 20
    );
    assert!(grown < 64 * 1024, "psmd's peak RSS grew by {grown} KiB for a {len}-byte message");
}

#[test]
fn a_stream_asks_for_the_token_password_through_the_prompt_handler() {
    let m = Mail::new();
    m.c.token_set_password(None, Some("s3cret pw")).unwrap();
    let c = m.d.client();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a2, weak) = (asked.clone(), c.downgrade());
    c.set_prompt_handler(Some(std::sync::Arc::new(move |p: Prompt| {
        assert_eq!(p.kind, PromptKind::Password);
        a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        weak.upgrade().unwrap().prompt_answer(p.id, Some("s3cret pw")).unwrap();
    })))
    .unwrap();
    let mut out = Vec::new();
    let op = SmimeOp::Sign { signer: sha(&m.alice) };
    c.smime_stream(op, SMIME_DER, &mut &MAIL[..], &mut out).unwrap();
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    let info = c.smime_verify(&out, None, None, 0).unwrap();
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    // Without a handler, a locked token is a clear error at once.
    let other = m.d.client();
    let e = other.smime_stream(SmimeOp::Sign { signer: sha(&m.alice) }, 0, &mut &MAIL[..], &mut Vec::new());
    assert_eq!(e.unwrap_err().code, Code::PSM_ERR_LOGIN_REQUIRED);
}

#[test]
fn binary_content_is_not_put_in_a_multipart_signed_entity_and_plain_mail_is_not_signed() {
    let m = Mail::new();
    let e =
        m.c.smime_sign(&sha(&m.alice), SMIME_DETACHED | SMIME_BINARY, b"line one\nline two\n").unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{e}");
    // Binary content signs opaque, or as a bare detached signature.
    for flags in [SMIME_BINARY, SMIME_BINARY | SMIME_DETACHED | SMIME_DER] {
        let signed = m.c.smime_sign(&sha(&m.alice), flags, b"line one\nline two\n").unwrap();
        let content = (flags & SMIME_DETACHED != 0).then_some(&b"line one\nline two\n"[..]);
        let info = m.c.smime_verify(&signed, content, None, SMIME_BINARY).unwrap();
        assert_eq!(info.status, Code::PSM_OK, "{flags:#x}: {}", info.detail);
    }
    let e = m.c.smime_verify(b"Content-Type: text/plain\r\n\r\nhello\r\n", None, None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_SMIME_NOT_SIGNED, "{e}");
    assert!(e.message.contains("text/plain"), "{e}");
}

#[test]
fn wrapping_is_unwrapped_to_a_limit_and_content_given_apart_must_be_signed() {
    let m = Mail::new();
    // signed, then encrypted twice: three layers, unwrapped in one call.
    let signed = m.c.smime_sign(&sha(&m.alice), 0, MAIL).unwrap();
    let mut msg = m.c.smime_encrypt(&[&sha(&m.bob)], 0, &signed).unwrap();
    msg = m.c.smime_encrypt(&[&sha(&m.bob)], 0, &msg).unwrap();
    let info = m.c.smime_decrypt(&msg, Some("alice@example.com"), SMIME_VERIFY_INNER).unwrap();
    assert_eq!(info.status, Code::PSM_OK, "{}", info.detail);
    assert_eq!(info.content.as_ref(), CANON);
    // A fourth layer is refused, however many more follow.
    for _ in 0..20 {
        msg = m.c.smime_encrypt(&[&sha(&m.bob)], 0, &msg).unwrap();
    }
    let e = m.c.smime_decrypt(&msg, None, SMIME_VERIFY_INNER).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_DECODE, "{e}");
    assert!(e.message.contains("wrapped more than"), "{e}");
    m.c.ping().unwrap();

    // An opaque signed message offered as the "signature" of other
    // content: the content is not what was signed, so it is refused.
    let opaque = m.c.smime_sign(&sha(&m.alice), SMIME_DER, MAIL).unwrap();
    let e =
        m.c.smime_verify(&opaque, Some(b"Content-Type: text/plain\n\nPay Mallory.\n"), None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{e}");
    // Also when padded past the inline size (it used to stream and check
    // its own content instead).
    let mut padded = opaque.clone();
    padded.extend(std::iter::repeat_n(b'\n', MAX_INLINE_SMIME));
    let e = m.c.smime_verify(&padded, Some(b"Pay Mallory."), None, 0).unwrap_err();
    assert_eq!(e.code, Code::PSM_ERR_INVALID_ARGUMENT, "{e}");
}

#[test]
fn an_opaque_binary_signature_verifies_the_same_streamed_or_not() {
    let m = Mail::new();
    let data = b"line1\nline2\n";
    let signed = m.c.smime_sign(&sha(&m.alice), SMIME_DER | SMIME_BINARY, data).unwrap();
    let inline = m.c.smime_verify(&signed, None, None, 0).unwrap();
    assert_eq!(inline.status, Code::PSM_OK, "{}", inline.detail);
    let mut out = Vec::new();
    let op = SmimeOp::Verify { signature: None, from: None };
    let streamed = m.c.smime_stream(op, 0, &mut &signed[..], &mut out).unwrap().unwrap();
    assert_eq!(streamed.status, Code::PSM_OK, "{}", streamed.detail);
    assert_eq!(out, inline.content.as_ref());
    assert_eq!(out, data);
}
