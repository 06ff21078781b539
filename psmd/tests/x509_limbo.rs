//! x509-limbo conformance: every case of
//! ../shared/conformance/x509-limbo/limbo.json goes through the verifier that
//! certificate requests and TLS channels use, `psmd::pki::verify`.
//!
//! A case's trusted certificates are the only anchors, its untrusted
//! intermediates the only intermediates, its peer certificate the leaf.
//! Our `Valid` agrees with an expected SUCCESS, anything else with FAILURE.
//! The test fails on any disagreement that is not in `KNOWN_DISAGREEMENTS`,
//! and on any listed case that now agrees, so the list stays honest.

use psmd::pki::verify::{self, Name, TrustSet, Usage, Verdict};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

const LIMBO_JSON: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance/x509-limbo/limbo.json");

/// Cases where we knowingly disagree with x509-limbo, each with the feature
/// that webpki, and so psm, deliberately does not implement. The README's
/// list of unsupported checks is the same list, grouped.
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[
    // A trust anchor is a name, a key and name constraints (RFC 5280 6.1.1);
    // webpki reads nothing else from an anchor certificate. (We add only its
    // validity period, as NSS does.)
    ("rfc5280::root-missing-basic-constraints", ANCHOR),
    ("rfc5280::root-non-critical-basic-constraints", ANCHOR),
    ("rfc5280::root-inconsistent-ca-extensions", ANCHOR),
    ("rfc5280::unknown-critical-extension-root", ANCHOR),
    ("webpki::forbidden-rsa-not-divisible-by-8-in-root", ANCHOR),
    ("webpki::eku::root-has-eku", "pedantic-webpki-eku: an anchor's EKU is not read (anchor = name + key)"),
    // Authority and subject key identifiers are issuance rules for CAs;
    // webpki builds paths by name and signature and ignores them.
    ("rfc5280::aki::critical-aki", AKI_SKI),
    ("rfc5280::aki::leaf-missing-aki", AKI_SKI),
    ("rfc5280::aki::intermediate-missing-aki", AKI_SKI),
    (
        "rfc5280::aki::cross-signed-root-missing-aki",
        "pedantic-rfc5280: AKI presence is an issuance rule webpki ignores",
    ),
    ("rfc5280::ski::critical-ski", AKI_SKI),
    ("rfc5280::ski::root-missing-ski", AKI_SKI),
    ("rfc5280::ski::intermediate-missing-ski", AKI_SKI),
    ("webpki::aki::root-with-aki-missing-keyidentifier", AKI_SKI),
    ("webpki::aki::root-with-aki-authoritycertissuer", AKI_SKI),
    ("webpki::aki::root-with-aki-authoritycertserialnumber", AKI_SKI),
    ("webpki::aki::root-with-aki-all-fields", AKI_SKI),
    ("webpki::aki::root-with-aki-ski-mismatch", AKI_SKI),
    // Other issuance-profile rules ("conforming CAs MUST ...") that a relying
    // party like webpki or a browser does not police.
    ("rfc5280::san::noncritical-with-empty-subject", PROFILE),
    ("webpki::san::san-critical-with-nonempty-subject", PROFILE),
    ("rfc5280::ca-empty-subject", PROFILE),
    (
        "rfc5280::leaf-ku-keycertsign",
        "webpki ignores key usage, so keyCertSign without cA=TRUE is not refused",
    ),
    (
        "rfc5280::nc::not-allowed-in-ee-noncritical",
        "webpki ignores a NameConstraints extension in an end entity",
    ),
    (
        "rfc5280::nc::not-allowed-in-ee-critical",
        "webpki ignores a NameConstraints extension in an end entity",
    ),
    ("webpki::nc::intermediate-permitted-excluded-subtrees-both-null", PROFILE),
    ("webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences", PROFILE),
    ("webpki::malformed-aia", "webpki does not parse the authority information access extension"),
    (
        "rfc5280::serial::too-long",
        "pedantic-serial-number: webpki accepts any serial it can read, as deployed certs need",
    ),
    (
        "rfc5280::serial::zero",
        "pedantic-serial-number: webpki accepts any serial it can read, as deployed certs need",
    ),
    (
        "rfc5280::san::underscore-dns",
        "webpki deliberately accepts '_' in DNS names, which deployed host names use",
    ),
    // The subject CN: webpki matches names against the SAN only and never
    // reads the CN, so the CA/B Forum rules tying CN to SAN are not checked.
    ("webpki::cn::ipv4-hex-mismatch", CN),
    ("webpki::cn::ipv4-leading-zeros-mismatch", CN),
    ("webpki::cn::ipv6-uppercase-mismatch", CN),
    ("webpki::cn::ipv6-uncompressed-mismatch", CN),
    ("webpki::cn::ipv6-non-rfc5952-mismatch", CN),
    ("webpki::cn::punycode-not-in-san", CN),
    ("webpki::cn::utf8-vs-punycode-mismatch", CN),
    ("webpki::cn::not-in-san", CN),
    ("webpki::cn::case-mismatch", CN),
    // Other CA/B Forum subscriber rules, tagged pedantic by limbo.
    (
        "webpki::eku::ee-anyeku",
        "pedantic-webpki-eku: an EE EKU with anyExtendedKeyUsage besides serverAuth is accepted",
    ),
    ("webpki::eku::ee-critical-eku", "pedantic-webpki-eku: EKU criticality is not checked"),
    (
        "webpki::eku::ee-without-eku",
        "pedantic-webpki-eku: RFC 5280 allows a leaf without EKU; webpki follows RFC 5280",
    ),
    ("webpki::san::public-suffix-multi-label-wildcard-san", PSL),
    ("webpki::san::public-suffix-private-namespace-wildcard-san", PSL),
    ("webpki::forbidden-p192-leaf", SUBSCRIBER_KEY),
    ("webpki::forbidden-dsa-leaf", SUBSCRIBER_KEY),
    ("webpki::forbidden-weak-rsa-in-leaf", SUBSCRIBER_KEY),
    ("webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf", SUBSCRIBER_KEY),
    // Deliberate webpki choices that refuse what RFC 5280 allows.
    ("rfc5280::ca-as-leaf", CA_AS_LEAF),
    ("pathlen::validation-ignores-pathlen-in-leaf", CA_AS_LEAF),
    (
        "pathlen::self-issued-certs-pathlen",
        "webpki counts self-issued CAs against pathLenConstraint, as mozilla::pkix chose to (bug 926265)",
    ),
    ("rfc5280::nc::permitted-self-issued", "webpki applies name constraints to self-issued CAs too"),
    (
        "rfc5280::nc::permitted-dn-match",
        "name-constraint-dn: webpki does not implement directoryName constraints",
    ),
    ("rfc5280::nc::nc-permits-email-exact", EMAIL_NC),
    ("rfc5280::nc::nc-permits-email-domain", EMAIL_NC),
    ("rfc5280::nc::nc-permits-email-literal-asterisk-exact-match", EMAIL_NC),
    ("rfc5280::nc::nc-permits-email-literal-double-asterisk", EMAIL_NC),
    ("rfc5280::nc::nc-permits-email-literal-mid-asterisk", EMAIL_NC),
    // Deliberate webpki choices that accept what RFC 5280 forbids.
    (
        "rfc5280::nc::permitted-dns-match-noncritical",
        "rfc5280-incompatible-with-webpki: webpki honours non-critical name constraints, as CA/B Forum allows",
    ),
    (
        "rfc5280::nc::invalid-dnsname-leading-period",
        "webpki deliberately reads a leading '.' in a dNSName constraint as deployed roots mean it",
    ),
    (
        "rfc5280::pc::ica-noncritical-pc",
        "has-policy-constraints: webpki does not process certificate policies",
    ),
];

const ANCHOR: &str =
    "an anchor is a name and a key to webpki (RFC 5280 6.1.1); its other extensions are not checked";
const AKI_SKI: &str =
    "key identifiers are an issuance rule; webpki builds paths by name and signature and ignores them";
const PROFILE: &str = "an issuance-profile rule for CAs that webpki, like browsers, does not police";
const CN: &str = "webpki never reads the subject CN, so CA/B Forum rules tying it to the SAN are not checked";
const PSL: &str = "pedantic-public-suffix-wildcard: webpki has no public suffix list";
const SUBSCRIBER_KEY: &str =
    "pedantic-webpki-subscriber-key: webpki checks signatures, not the leaf's own key type or size";
const CA_AS_LEAF: &str = "webpki deliberately refuses a cA=TRUE certificate as an end entity (CA/B Forum)";
const EMAIL_NC: &str = "webpki does not implement rfc822Name constraints and fails closed on them";

/// One case, reduced to what the verifier takes.
struct Case {
    id: String,
    expect_success: bool,
    leaf: Vec<u8>,
    usage: Usage,
    names: Vec<OwnedName>,
    at_unix_secs: u64,
    trust: TrustSet,
    description: String,
}

enum OwnedName {
    Dns(String),
    Ip(IpAddr),
    Email(String),
}

impl OwnedName {
    fn as_name(&self) -> Name<'_> {
        match self {
            OwnedName::Dns(s) => Name::Dns(s),
            OwnedName::Ip(ip) => Name::Ip(*ip),
            OwnedName::Email(s) => Name::Email(s),
        }
    }
}

#[test]
fn x509_limbo_cases_agree_except_known_unsupported_features() {
    let text = std::fs::read_to_string(LIMBO_JSON).unwrap_or_else(|e| {
        panic!(
            "cannot read the x509-limbo cases at {LIMBO_JSON}: {e}; the suite lives in \
             ../shared/conformance/x509-limbo/ next to the repository"
        )
    });
    let limbo: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{LIMBO_JSON} is not JSON: {e}"));
    let testcases =
        limbo["testcases"].as_array().unwrap_or_else(|| panic!("{LIMBO_JSON} has no testcases array"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock before 1970").as_secs();

    let known: HashMap<&str, &str> = KNOWN_DISAGREEMENTS.iter().copied().collect();
    let mut seen = HashSet::new();
    let (mut agree, mut disagree) = (0, 0);
    let mut unexpected = Vec::new();
    let mut now_agreeing = Vec::new();
    for value in testcases {
        let case = parse_case(value, now);
        assert!(seen.insert(case.id.clone()), "duplicate case id {}", case.id);
        let verdict = run(&case);
        let agrees = verdict.is_valid() == case.expect_success;
        let expected = if case.expect_success { "SUCCESS" } else { "FAILURE" };
        if agrees {
            agree += 1;
            if known.contains_key(case.id.as_str()) {
                now_agreeing.push(case.id.clone());
            }
            continue;
        }
        disagree += 1;
        let reason = match known.get(case.id.as_str()) {
            Some(reason) => format!("known: {reason}"),
            None => {
                unexpected.push(case.id.clone());
                format!("NOT A KNOWN DISAGREEMENT; the case: {}", first_line(&case.description))
            }
        };
        println!(
            "  {}: we said {} ({}); expected {expected}; {reason}",
            case.id, verdict.status, verdict.detail
        );
    }
    println!("x509-limbo: {agree} agree, {disagree} disagree (of {})", testcases.len());

    let missing: Vec<&str> = known.keys().copied().filter(|id| !seen.contains(*id)).collect();
    assert!(missing.is_empty(), "KNOWN_DISAGREEMENTS names cases that are not in limbo.json: {missing:?}");
    assert!(unexpected.is_empty(), "cases disagree that are not known disagreements: {unexpected:?}");
    assert!(
        now_agreeing.is_empty(),
        "cases on KNOWN_DISAGREEMENTS now agree; take them off the list: {now_agreeing:?}"
    );
}

/// Verifies the case once per expected name (once with no name if it has
/// none); it is valid only if every run is.
fn run(case: &Case) -> Verdict {
    if case.names.is_empty() {
        return verify::verify(&case.leaf, case.usage, Name::None, case.at_unix_secs, &case.trust);
    }
    let mut last = None;
    for name in &case.names {
        let verdict = verify::verify(&case.leaf, case.usage, name.as_name(), case.at_unix_secs, &case.trust);
        if !verdict.is_valid() {
            return verdict;
        }
        last = Some(verdict);
    }
    last.expect("at least one name")
}

fn parse_case(v: &Value, now: u64) -> Case {
    let id = str_field(v, "id", "(no id)").to_string();
    let field = |name: &str| &v[name];
    let expect_success = match str_field(v, "expected_result", &id) {
        "SUCCESS" => true,
        "FAILURE" => false,
        other => panic!("case {id}: unknown expected_result {other}"),
    };
    let mut usage = match str_field(v, "validation_kind", &id) {
        "SERVER" => Usage::TlsServer,
        "CLIENT" => Usage::TlsClient,
        other => panic!("case {id}: unknown validation_kind {other}"),
    };
    // The case's extended_key_usage names the purpose being validated; it
    // overrides validation_kind's default when it says something else.
    let ekus = strings(field("extended_key_usage"), &id);
    match ekus.as_slice() {
        [] => {}
        [eku] => {
            usage = match eku.as_str() {
                "serverAuth" => Usage::TlsServer,
                "clientAuth" => Usage::TlsClient,
                "codeSigning" => Usage::CodeSigning,
                "emailProtection" => Usage::EmailSigner,
                other => panic!("case {id}: extended_key_usage {other} has no psm usage"),
            }
        }
        more => panic!("case {id}: several extended key usages {more:?}; the harness validates one"),
    }
    // signature_algorithms would narrow the accepted algorithms; psm always
    // takes webpki's full set, so such a case could not be run faithfully.
    // (key_usage, set by two cases to digitalSignature, is not checked by
    // webpki for TLS; both cases agree either way.)
    assert!(
        strings(field("signature_algorithms"), &id).is_empty(),
        "case {id}: signature_algorithms is set, and the harness cannot express it"
    );

    let mut names = Vec::new();
    if !field("expected_peer_name").is_null() {
        names.push(peer_name(field("expected_peer_name"), &id));
    }
    if let Some(more) = field("expected_peer_names").as_array() {
        names.extend(more.iter().map(|n| peer_name(n, &id)));
    }

    let at_unix_secs = match field("validation_time") {
        Value::Null => now,
        Value::String(s) => {
            rfc3339_to_unix(s).unwrap_or_else(|| panic!("case {id}: bad validation_time {s}"))
        }
        other => panic!("case {id}: validation_time {other} is neither null nor a string"),
    };
    let max_path_len = match field("max_chain_depth") {
        Value::Null => None,
        depth => {
            Some(depth.as_u64().unwrap_or_else(|| panic!("case {id}: bad max_chain_depth {depth}")) as usize)
        }
    };

    let trust = TrustSet {
        anchors: strings(field("trusted_certs"), &id).iter().map(|pem| cert_der(pem, &id)).collect(),
        intermediates: strings(field("untrusted_intermediates"), &id)
            .iter()
            .map(|pem| cert_der(pem, &id))
            .collect(),
        crls: strings(field("crls"), &id).iter().map(|pem| crl_der(pem, &id)).collect(),
        max_path_len,
        ..TrustSet::default()
    };
    Case {
        leaf: cert_der(str_field(v, "peer_certificate", &id), &id),
        description: field("description").as_str().unwrap_or("").to_string(),
        id,
        expect_success,
        usage,
        names,
        at_unix_secs,
        trust,
    }
}

fn str_field<'a>(v: &'a Value, name: &str, id: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("case {id}: {name} is not a string"))
}

fn strings(v: &Value, id: &str) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().unwrap_or_else(|| panic!("case {id}: {item} is not a string")).to_string()
            })
            .collect(),
        other => panic!("case {id}: {other} is not a list"),
    }
}

fn peer_name(v: &Value, id: &str) -> OwnedName {
    let value = str_field(v, "value", id).to_string();
    match str_field(v, "kind", id) {
        "DNS" => OwnedName::Dns(value),
        "IP" => OwnedName::Ip(value.parse().unwrap_or_else(|e| panic!("case {id}: bad IP {value}: {e}"))),
        "RFC822" => OwnedName::Email(value),
        other => panic!("case {id}: unknown peer name kind {other}"),
    }
}

fn cert_der(pem: &str, id: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap_or_else(|e| panic!("case {id}: certificate PEM does not parse: {e:?}"))
        .to_vec()
}

fn crl_der(pem: &str, id: &str) -> Vec<u8> {
    CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .unwrap_or_else(|e| panic!("case {id}: CRL PEM does not parse: {e:?}"))
        .to_vec()
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// Strict RFC 3339 as limbo.json writes it: "YYYY-MM-DDTHH:MM:SS", optional
/// fractional seconds (floored: certificate times have whole seconds), then
/// "Z" or "+HH:MM"/"-HH:MM". No time crate with parsing is among our
/// dependencies, so this small one lives here, in the test only.
fn rfc3339_to_unix(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let minutes = two(*h1, *h2)? * 60 + two(*m1, *m2)?;
            if *sign == b'+' { minutes * 60 } else { -minutes * 60 }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn rfc3339_parser_reads_the_forms_limbo_uses() {
    assert_eq!(rfc3339_to_unix("1970-01-01T00:00:03+00:00"), Some(3));
    assert_eq!(rfc3339_to_unix("2024-01-01T00:00:00Z"), Some(1_704_067_200));
    assert_eq!(rfc3339_to_unix("2024-03-01T00:00:00.999+00:00"), Some(1_709_251_200));
    assert_eq!(rfc3339_to_unix("2024-03-01T01:00:00+01:00"), Some(1_709_251_200));
    assert_eq!(rfc3339_to_unix("2024-03-01 00:00:00Z"), None);
    assert_eq!(rfc3339_to_unix("2024-13-01T00:00:00Z"), None);
    assert_eq!(rfc3339_to_unix("2024-03-01T00:00:00"), None);
}
