//! Wire messages. Each enum is append-only: new variants go at the end so
//! that older peers keep decoding the ones they know (postcard encodes the
//! variant index).

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// Largest `Random` request the daemon serves in one reply.
pub const MAX_RANDOM: u32 = 64 * 1024;
/// Largest buffer `Digest` takes inline; the client streams anything larger.
pub const MAX_INLINE_DIGEST: usize = 512 * 1024;
/// Longest application name accepted in `Hello`.
pub const MAX_APP_NAME: usize = 256;

/// Hello flags: the application can open the HTML dialog URLs psmd sends.
pub const HELLO_CAN_SHOW_DIALOGS: u32 = 1 << 0;
/// Hello flags: the application answers prompts itself.
pub const HELLO_HAS_PROMPT_HANDLER: u32 = 1 << 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// One request from the application: `id` comes back in the reply.
///
/// The id is encoded before the body on purpose: a daemon that cannot decode
/// the body (an unknown request kind from a newer client) can still answer
/// that id with an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFrame {
    pub id: u64,
    pub request: Request,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Must be the first request on a connection.
    Hello {
        version_min: u16,
        version_max: u16,
        app_name: String,
        flags: u32,
    },
    Ping,
    /// Daemon status as JSON.
    Status,
    /// `len` bytes from the operating system's CSPRNG (at most [`MAX_RANDOM`]).
    Random {
        len: u32,
    },
    /// Digest of an inline buffer (at most [`MAX_INLINE_DIGEST`] bytes).
    Digest {
        alg: HashAlg,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Open a data channel that digests what the application writes into it.
    DigestStream {
        alg: HashAlg,
    },
    /// Wait for the channel's input to end and return its result.
    ChannelFinish {
        channel: u64,
    },
    /// Drop a channel and whatever it was doing.
    ChannelClose {
        channel: u64,
    },
    /// Test hook: occupy a worker for `ms` milliseconds. Refused unless psmd
    /// runs with `--test-hooks`.
    DebugSleep {
        ms: u32,
    },
    /// Import certificates (PEM, DER or PKCS#7 certs-only). `trust` bits are
    /// given to the first certificate. Replies `Certs`, the first one first.
    CertImport {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        nickname: Option<String>,
        trust: u32,
    },
    /// Nickname, email address or `sha256:<hex>`. Replies `Certs` (one).
    CertFind {
        query: String,
    },
    /// `CERTS_*` filter bits. Replies `Certs`.
    CertList {
        filter: u32,
    },
    /// Atomically `trust = (trust | set) & !clear`: concurrent edits of
    /// different bits never undo each other.
    CertChangeTrust {
        sha256_hex: String,
        set: u32,
        clear: u32,
    },
    /// Delete a certificate (and its private key only when `with_key`).
    CertDelete {
        sha256_hex: String,
        with_key: bool,
    },
    /// Verify `der` for `usage` (and `name`, if given) at `at` (unix seconds,
    /// 0 = now) against the store's trust settings. Replies `Verification`.
    CertVerify {
        #[serde(with = "serde_bytes")]
        der: Vec<u8>,
        usage: CertUsage,
        name: Option<String>,
        at: i64,
    },
    /// Import a CRL (DER or PEM), used by later verifications.
    CrlImport {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Unlock the soft token for this session. `None`: ask the user.
    TokenLogin {
        password: Option<Secret>,
    },
    TokenLogout,
    /// Change the token password (`None` old: ask; empty new: no password).
    TokenSetPassword {
        old: Option<Secret>,
        new: Option<Secret>,
    },
    /// Generate a key in the token; replies `Bytes` with a PKCS#10 request
    /// for `subject_dn` and `sans` ("dns:..", "ip:..", "email:..").
    KeyGenerate {
        kind: KeyKind,
        subject_dn: String,
        nickname: Option<String>,
        sans: Vec<String>,
    },
    /// Sign `data` with the private key of the certificate. Replies `Bytes`.
    KeySign {
        sha256_hex: String,
        alg: SigKind,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Import a PKCS#12 file: key into the token, certificates into the store.
    Pkcs12Import {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        password: Option<Secret>,
    },
    /// Export a certificate with its key as PKCS#12. Replies `Bytes`.
    Pkcs12Export {
        sha256_hex: String,
        password: Option<Secret>,
    },
    /// Seal a small secret under the token ("secret decoder ring").
    SdrEncrypt {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    SdrDecrypt {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// psmd resolves `host`, connects, runs the TLS handshake and replies
    /// `Channel`: the plaintext side of the connection.
    SslConnect {
        host: String,
        port: u16,
        opts: SslOpts,
    },
    /// Wraps the connected TCP socket that travels with this request
    /// (`SCM_RIGHTS`) as a TLS client for `server_name`. Replies `Channel`.
    SslWrapFd {
        server_name: String,
        opts: SslOpts,
    },
    /// Wraps the accepted TCP socket that travels with this request as a TLS
    /// server presenting the certificate `sha256_hex` and its key.
    SslAcceptFd {
        sha256_hex: String,
        opts: SslOpts,
    },
    /// Connects without TLS (STARTTLS protocols); `SslStepUp` starts TLS
    /// later. Replies `Channel`.
    TlsOpenPlain {
        host: String,
        port: u16,
        opts: SslOpts,
    },
    /// Starts the TLS handshake on a channel opened by `TlsOpenPlain`;
    /// replies `Done` once it succeeded.
    SslStepUp {
        channel: u64,
    },
    /// Security information of a TLS channel. Replies `Json`.
    SslInfo {
        channel: u64,
    },
    /// The certificates the peer presented, leaf first. Replies `Certs`
    /// (with nickname and trust when the store has them).
    SslPeerCerts {
        channel: u64,
    },
    /// The application does (or no longer does) answer `Prompt` events.
    SetPromptHandler {
        enabled: bool,
    },
    /// The answer to the `Prompt` event `id`; None cancels.
    PromptAnswer {
        id: u64,
        answer: Option<Secret>,
    },
    /// Sign `data` (a MIME entity, or raw bytes with `SMIME_BINARY`) with
    /// the certificate `signer` ("sha256:<hex>" or nickname) and its key.
    /// `SMIME_*` flags. Replies `Bytes`: the S/MIME entity, DER or PEM.
    SmimeSign {
        signer: String,
        flags: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Verify a signed message (S/MIME, DER or PEM); `content` is the
    /// signed content of a detached signature given apart; `from` the
    /// address the signer's certificate must carry. Replies `Smime`.
    SmimeVerify {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        content: Option<serde_bytes::ByteBuf>,
        from: Option<String>,
        flags: u32,
    },
    /// Encrypt `data` to the certificates `recipients` ("sha256:<hex>" or
    /// nickname each). Replies `Bytes`.
    SmimeEncrypt {
        recipients: Vec<String>,
        flags: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Decrypt with a key of the token; with `SMIME_VERIFY_INNER` a signed
    /// message inside is verified too (`from` as for `SmimeVerify`).
    /// Replies `Smime`.
    SmimeDecrypt {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        from: Option<String>,
        flags: u32,
    },
    /// A certs-only message (.p7c) carrying `certs`. Replies `Bytes`.
    SmimeCertsOnly {
        certs: Vec<String>,
        flags: u32,
    },
    /// The certificates of a certs-only (or any CMS SignedData) message,
    /// without importing them. Replies `Certs`.
    SmimeReadCerts {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Open a data channel running an S/MIME operation on a stream:
    /// the application writes the input and half-closes, reads the output
    /// to EOF, and `ChannelFinish` replies `Smime` (verify, decrypt) or
    /// `Done` (sign, encrypt).
    SmimeStream {
        op: SmimeOp,
        flags: u32,
    },
    /// Read the system policy again (as SIGHUP does). `Done`, or why the
    /// file was refused (the old policy stays).
    PolicyReload,
    /// Check a policy file's text without applying it. Replies `Problems`
    /// (empty when it is good).
    PolicyCheck {
        text: String,
    },
    /// The user's stored certificate overrides. Replies `Json`: a list of
    /// `{host, port, sha256, errors, added}`.
    OverrideList,
    /// Forgets the overrides for `host`:`port`. `NOT_FOUND` if none.
    OverrideDelete {
        host: String,
        port: u16,
    },
    /// Shows psm's read-only view of a stored certificate in a dialog;
    /// replies `Done` once the user closed it.
    CertView {
        sha256_hex: String,
    },
    /// Shows what protects a TLS channel (psm's security advisor) in a
    /// dialog; replies `Done` once the user closed it.
    SslShowInfo {
        channel: u64,
    },
    /// Check a user config file's text (`config.toml`: only the settings
    /// users may set) without applying it. Replies `Problems`.
    ConfigCheck {
        text: String,
    },
    /// Shows psm's dialog about a verified or decrypted message: the
    /// verdict psmd gave (`SmimeInfo::result_id`, this session's), who
    /// signed and why psm trusts them. Replies `Done` once closed.
    SmimeShowInfo {
        result_id: u64,
    },
    /// A new certificate request (PKCS#10, DER) for the key of a stored
    /// certificate: renewal, or a certificate from another CA. Replies
    /// `Bytes`.
    KeyCsr {
        sha256_hex: String,
        subject_dn: String,
        sans: Vec<String>,
    },
    /// psm's soft token and the tokens in every slot of the PKCS#11
    /// modules the policy names. Replies `Tokens`.
    TokenList,
    /// Logs in to the token a PKCS#11 URI names (`TokenInfo::uri`); `pin`
    /// None: psm asks the user. A PKCS#11 token stays logged in for every
    /// application until `TokenLogoutFrom`, the policy's idle timeout or
    /// its removal.
    TokenLoginTo {
        token: String,
        pin: Option<Secret>,
    },
    /// Logs out of the token a PKCS#11 URI names.
    TokenLogoutFrom {
        token: String,
    },
}

/// An S/MIME operation on a stream (`SmimeStream`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SmimeOp {
    Sign {
        signer: String,
    },
    Encrypt {
        recipients: Vec<String>,
    },
    /// Verify; with `signature` the input is the content a detached
    /// signature covers, and there is no output.
    Verify {
        signature: Option<serde_bytes::ByteBuf>,
        from: Option<String>,
    },
    Decrypt {
        from: Option<String>,
    },
}

/// Number of request kinds this build knows; a variant index at or above it
/// is a request from a newer client.
pub const REQUEST_KINDS: u32 = 53;

/// Trust bits (`PSM_TRUST_*`): which usages a certificate is trusted for,
/// as a CA (may issue) or as a peer (is itself accepted), or distrusted.
pub const TRUST_CA_TLS_SERVER: u32 = 1 << 0;
pub const TRUST_CA_TLS_CLIENT: u32 = 1 << 1;
pub const TRUST_CA_EMAIL: u32 = 1 << 2;
pub const TRUST_CA_CODE: u32 = 1 << 3;
pub const TRUST_PEER_TLS: u32 = 1 << 4;
pub const TRUST_PEER_EMAIL: u32 = 1 << 5;
pub const TRUST_DISTRUSTED: u32 = 1 << 6;
pub const TRUST_ALL_BITS: u32 = (1 << 7) - 1;

/// Certificate list filters (`PSM_CERTS_*`); a certificate matches when it
/// matches any bit given, and 0 means all.
pub const CERTS_USER: u32 = 1 << 0;
pub const CERTS_CA: u32 = 1 << 1;
pub const CERTS_PEOPLE: u32 = 1 << 2;
pub const CERTS_SERVERS: u32 = 1 << 3;

/// A password or PIN on the wire: never printed by `Debug`, wiped from
/// memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Private key types psmd generates (`PSM_KEY_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    EcP256,
    EcP384,
    Ed25519,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// Signature algorithms for `KeySign` (`PSM_SIG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigKind {
    EcdsaSha256,
    EcdsaSha384,
    Ed25519,
    RsaPkcs1Sha256,
    RsaPssSha256,
}

/// What a certificate is verified for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertUsage {
    TlsServer,
    TlsClient,
    EmailSigner,
    EmailRecipient,
    CodeSigning,
}

/// A certificate as psmd describes it: the DER plus the fields applications
/// ask for most, parsed once by psmd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    #[serde(with = "serde_bytes")]
    pub der: Vec<u8>,
    /// Empty for a certificate that is not in the store.
    pub nickname: String,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub sha256_hex: String,
    pub sha1_hex: String,
    /// rfc822Name SANs, then the subject's emailAddress, lower-cased domain.
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    /// keyUsage bits (bit 0 digitalSignature ... bit 8 decipherOnly, as in
    /// RFC 5280); None when the extension is absent (no restriction).
    pub key_usage: Option<u16>,
    /// extendedKeyUsage purposes by name ("serverAuth", "emailProtection",
    /// ...; other OIDs dotted); None when the extension is absent.
    pub ext_key_usage: Option<Vec<String>>,
    pub has_private_key: bool,
    /// `TRUST_*` bits.
    pub trust: u32,
    /// One of the system's trust anchors: may be distrusted, not deleted.
    pub builtin: bool,
    /// The label of the PKCS#11 token the certificate is on; empty for a
    /// certificate in psm's store.
    pub token: String,
    /// The RFC 7512 URI of the certificate object on its token; empty for
    /// a certificate in psm's store.
    pub uri: String,
}

/// The outcome of verifying a certificate: a `Code` (PSM_OK = valid), the
/// reason in words, and the chain (leaf first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub status: crate::error::Code,
    pub detail: String,
    pub chain: Vec<CertInfo>,
}

impl Request {
    /// Name for logs: never includes the request's data.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "Hello",
            Request::Ping => "Ping",
            Request::Status => "Status",
            Request::Random { .. } => "Random",
            Request::Digest { .. } => "Digest",
            Request::DigestStream { .. } => "DigestStream",
            Request::ChannelFinish { .. } => "ChannelFinish",
            Request::ChannelClose { .. } => "ChannelClose",
            Request::DebugSleep { .. } => "DebugSleep",
            Request::CertImport { .. } => "CertImport",
            Request::CertFind { .. } => "CertFind",
            Request::CertList { .. } => "CertList",
            Request::CertChangeTrust { .. } => "CertChangeTrust",
            Request::CertDelete { .. } => "CertDelete",
            Request::CertVerify { .. } => "CertVerify",
            Request::CrlImport { .. } => "CrlImport",
            Request::TokenLogin { .. } => "TokenLogin",
            Request::TokenLogout => "TokenLogout",
            Request::TokenSetPassword { .. } => "TokenSetPassword",
            Request::KeyGenerate { .. } => "KeyGenerate",
            Request::KeySign { .. } => "KeySign",
            Request::Pkcs12Import { .. } => "Pkcs12Import",
            Request::Pkcs12Export { .. } => "Pkcs12Export",
            Request::SdrEncrypt { .. } => "SdrEncrypt",
            Request::SdrDecrypt { .. } => "SdrDecrypt",
            Request::SslConnect { .. } => "SslConnect",
            Request::SslWrapFd { .. } => "SslWrapFd",
            Request::SslAcceptFd { .. } => "SslAcceptFd",
            Request::TlsOpenPlain { .. } => "TlsOpenPlain",
            Request::SslStepUp { .. } => "SslStepUp",
            Request::SslInfo { .. } => "SslInfo",
            Request::SslPeerCerts { .. } => "SslPeerCerts",
            Request::SetPromptHandler { .. } => "SetPromptHandler",
            Request::PromptAnswer { .. } => "PromptAnswer",
            Request::SmimeSign { .. } => "SmimeSign",
            Request::SmimeVerify { .. } => "SmimeVerify",
            Request::SmimeEncrypt { .. } => "SmimeEncrypt",
            Request::SmimeDecrypt { .. } => "SmimeDecrypt",
            Request::SmimeCertsOnly { .. } => "SmimeCertsOnly",
            Request::SmimeReadCerts { .. } => "SmimeReadCerts",
            Request::SmimeStream { .. } => "SmimeStream",
            Request::PolicyReload => "PolicyReload",
            Request::PolicyCheck { .. } => "PolicyCheck",
            Request::OverrideList => "OverrideList",
            Request::OverrideDelete { .. } => "OverrideDelete",
            Request::CertView { .. } => "CertView",
            Request::SslShowInfo { .. } => "SslShowInfo",
            Request::ConfigCheck { .. } => "ConfigCheck",
            Request::SmimeShowInfo { .. } => "SmimeShowInfo",
            Request::KeyCsr { .. } => "KeyCsr",
            Request::TokenList => "TokenList",
            Request::TokenLoginTo { .. } => "TokenLoginTo",
            Request::TokenLogoutFrom { .. } => "TokenLogoutFrom",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Hello {
        daemon_version: String,
        session_id: u64,
        version: u16,
    },
    Pong,
    Status {
        json: String,
    },
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A data channel was opened; its descriptor travels with this frame.
    Channel {
        channel: u64,
    },
    Done,
    Certs(Vec<CertInfo>),
    Verification(Verification),
    Json(String),
    Smime(Box<SmimeInfo>),
    /// What is wrong with a policy file: (line, problem).
    Problems(Vec<(u32, String)>),
    Tokens(Vec<TokenInfo>),
}

/// Token flags (`PSM_TOKEN_*`).
/// psm's own soft token (not a PKCS#11 module's).
pub const TOKEN_SOFT: u32 = 1 << 0;
/// Logged in: its private keys can be used now.
pub const TOKEN_LOGGED_IN: u32 = 1 << 1;
/// Its private keys need a login (PIN or password).
pub const TOKEN_LOGIN_REQUIRED: u32 = 1 << 2;
/// The PIN is typed on the reader's PIN pad, not given to psm.
pub const TOKEN_PIN_PAD: u32 = 1 << 3;
pub const TOKEN_WRITE_PROTECTED: u32 = 1 << 4;
/// A wrong PIN was typed since the last right one.
pub const TOKEN_PIN_COUNT_LOW: u32 = 1 << 5;
/// One more wrong PIN locks the token.
pub const TOKEN_PIN_FINAL_TRY: u32 = 1 << 6;
pub const TOKEN_PIN_LOCKED: u32 = 1 << 7;
/// False for a blank token that must be initialized before use.
pub const TOKEN_INITIALIZED: u32 = 1 << 8;

/// A token: psm's soft token, or one in a slot of a PKCS#11 module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The RFC 7512 URI that names it (`TokenLoginTo`, `CertFind`).
    pub uri: String,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// The module's path; empty for the soft token.
    pub module: String,
    /// What the module says it is.
    pub module_description: String,
    pub slot: u64,
    pub slot_description: String,
    /// `TOKEN_*` bits.
    pub flags: u32,
}

/// S/MIME flags (`PSM_SMIME_*`).
/// Sign: a detached signature (multipart/signed) rather than an opaque one.
pub const SMIME_DETACHED: u32 = 1 << 0;
/// Output DER rather than an S/MIME MIME entity.
pub const SMIME_DER: u32 = 1 << 1;
/// Sign: leave the signer's certificate and chain out of the message.
pub const SMIME_NO_CERTS: u32 = 1 << 2;
/// Encrypt: AES-256-CBC EnvelopedData for older readers, rather than
/// AES-256-GCM AuthEnvelopedData (RFC 5083).
pub const SMIME_CBC: u32 = 1 << 3;
/// Output PEM rather than an S/MIME MIME entity.
pub const SMIME_PEM: u32 = 1 << 4;
/// The content is binary: no canonical CRLF line endings (RFC 8551 3.1.1).
pub const SMIME_BINARY: u32 = 1 << 5;
/// Sign with SHA-384 (default SHA-256).
pub const SMIME_SHA384: u32 = 1 << 6;
/// Sign with SHA-512.
pub const SMIME_SHA512: u32 = 1 << 7;
/// Sign with RSASSA-PSS (RSA keys; default PKCS#1 v1.5).
pub const SMIME_RSA_PSS: u32 = 1 << 8;
/// Decrypt: a signed message inside is verified too.
pub const SMIME_VERIFY_INNER: u32 = 1 << 9;
/// Verify: remember the signer's certificate (for encrypting to it later),
/// as a person's certificate without trust.
pub const SMIME_REMEMBER_SIGNER: u32 = 1 << 10;
/// Encrypt: RSAES-OAEP key transport for RSA recipients (default v1.5).
pub const SMIME_RSA_OAEP: u32 = 1 << 11;
/// Every `SMIME_*` bit this build knows.
pub const SMIME_ALL_FLAGS: u32 = (1 << 12) - 1;

/// Largest message the inline `Smime*` requests take; the client streams
/// anything larger.
pub const MAX_INLINE_SMIME: usize = 512 * 1024;

/// What verifying or decrypting a message found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmimeInfo {
    /// The verdict: `PSM_OK` for an intact signature by a signer whose
    /// chain is valid for e-mail at the signing time (and an unsigned
    /// message that decrypted), else why not.
    pub status: crate::error::Code,
    /// The reason, in plain words.
    pub detail: String,
    pub signed: bool,
    pub encrypted: bool,
    /// The signer's certificate, when the message names one we could find.
    pub signer: Option<CertInfo>,
    /// The signer's chain as verified, leaf first.
    pub chain: Vec<CertInfo>,
    /// Signing time claimed by the signer (unix seconds; 0 = absent).
    pub signing_time: i64,
    /// The signer's chain checked now rather than at the signing time
    /// (`PSM_OK`, or e.g. `PSM_ERR_CERT_EXPIRED` for an old message).
    pub status_now: crate::error::Code,
    /// Digest algorithm of the signature ("sha256", ...), content
    /// encryption ("aes-256-gcm", ...): for the user's information.
    pub digest: String,
    pub cipher: String,
    /// The content (empty when it went out through a stream).
    pub content: serde_bytes::ByteBuf,
    /// psmd's name for this verdict in this session, for
    /// `SmimeShowInfo` (psm's dialog about the message).
    pub result_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// psmd is stopping; requests in flight will fail with
    /// `PSM_ERR_DISCONNECTED`. A later `psm_connect` starts a new daemon.
    Shutdown { reason: String },
    /// Open `url` in an HTML window of the given size.
    Dialog { id: u64, width: u32, height: u32, modal: bool, url: String },
    /// The dialog `id` was answered, cancelled or timed out: close its window.
    DialogDone { id: u64 },
    /// A question for the application's own prompt handler; answer with
    /// `PromptAnswer`.
    Prompt(Prompt),
    /// Certificates, trust settings, CRLs, overrides or keys in the store
    /// changed: views of them (certificate lists) are stale.
    StoreChanged,
    /// The soft token was logged in or out, or its password changed.
    TokenChanged,
    /// The system policy changed (a reload read a different file).
    PolicyChanged,
}

/// What a prompt asks (`PSM_PROMPT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptKind {
    /// A server certificate failed verification. Answers: "once", "always"
    /// (remembered for this host, port, certificate and errors), "reject".
    ServerTrust,
    /// The server asks for a client certificate and several match. Answer:
    /// one of `choices` (a certificate's "sha256:<hex>").
    ClientCert,
    /// A password. Answer: the password.
    Password,
    /// A new password (token password, PKCS#12 export). Answer: the
    /// password; the details give the policy's rules (`min_length`).
    NewPassword,
    /// Confirm the use of a private key. Answers: "allow", "deny".
    Confirm,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub id: u64,
    pub kind: PromptKind,
    /// One or two sentences for the user, in plain words.
    pub message: String,
    /// Everything the question is about, as a JSON object (host, port,
    /// error, certificate chain, ...).
    pub details_json: String,
    /// The answers that are accepted (empty for a password).
    pub choices: Vec<String>,
}

/// TLS protocol versions (`PSM_TLS_1_2`, `PSM_TLS_1_3`: the wire numbers).
pub const TLS_1_2: u16 = 0x0303;
pub const TLS_1_3: u16 = 0x0304;

/// Options of a TLS channel. The defaults: TLS 1.2 and 1.3, no ALPN, no
/// proxy, a client certificate only if the server asks (chosen by the user
/// when several match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslOpts {
    /// ALPN protocols in order of preference.
    pub alpn: Vec<serde_bytes::ByteBuf>,
    /// The client certificate to present: nickname or "sha256:<hex>".
    pub client_cert: Option<String>,
    /// `TLS_1_2` or `TLS_1_3`; 0 = TLS 1.2.
    pub min_version: u16,
    /// An HTTP proxy ("host:port") to reach the server through with CONNECT.
    pub proxy: Option<String>,
    /// Limit for resolving, connecting and the handshake, in milliseconds;
    /// 0 = the default (30 s). Time spent waiting for the user is not counted.
    pub timeout_ms: u32,
}

/// Everything the daemon sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    Reply { id: u64, result: Result<Reply, Error> },
    Event(Event),
}

impl ServerFrame {
    /// Number of descriptors that travel with this frame.
    pub fn fd_count(&self) -> usize {
        match self {
            ServerFrame::Reply { result: Ok(Reply::Channel { .. }), .. } => 1,
            _ => 0,
        }
    }
}

impl Request {
    /// Number of descriptors that travel with this request (the socket of
    /// `SslWrapFd` and `SslAcceptFd`).
    pub fn fd_count(&self) -> usize {
        match self {
            Request::SslWrapFd { .. } | Request::SslAcceptFd { .. } => 1,
            _ => 0,
        }
    }
}
