//! Distinguished names written as text by an administrator, and the
//! certificates whose issuer and serial number they name (the policy's
//! `trust.distrusted = [{ issuer = "...", serial = "..." }]`).
//!
//! The text is RFC 4514's: `type=value` pairs separated by commas, `+`
//! joining the pairs of a multi-valued RDN, `\` escaping a special
//! character (`\,`) or giving a byte in hex (`\2C`). Types are the usual
//! keywords (CN, O, OU, C, L, ST, DC, emailAddress, ...; any case) or a
//! dotted OID. Spaces around `=`, `,` and `+` are ignored, so what
//! `psm cert show` and `openssl x509 -issuer` print can be pasted.
//!
//! A name matches when it has the same RDNs with the same attribute types
//! and values, values compared as RFC 5280 (7.1) asks of conforming
//! software: case-insensitively, with leading, trailing and repeated inner
//! spaces ignored, whatever ASN.1 string type the CA used (so a raw DER
//! comparison of a name encoded from the text, which would differ between
//! PrintableString and UTF8String, is not what is done). The RDNs may be
//! written in either order: `psm cert show` and OpenSSL print a name in
//! certificate order (C first), RFC 4514 and LDAP tools reversed (CN
//! first). A distrust entry that silently matched nothing because of the
//! order would fail open; one matching a name and its mirror image cannot
//! reasonably hit anything else.

use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Attribute types by keyword (compared case-insensitively). Names the
/// x509-parser OID registry knows are accepted as well.
const KEYWORDS: [(&str, &str); 24] = [
    ("CN", "2.5.4.3"),
    ("commonName", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("serialNumber", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("countryName", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("localityName", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("stateOrProvinceName", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("organizationName", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("organizationalUnitName", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("givenName", "2.5.4.42"),
    ("organizationIdentifier", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("Email", "1.2.840.113549.1.9.1"),
];

/// One RDN: its attributes as (dotted OID, normalized value), sorted.
type Rdn = Vec<(String, String)>;

/// A distinguished name parsed from text, ready to be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// Parses RFC 4514 text; the error says what is wrong in words.
    pub fn parse(text: &str) -> Result<Dn, String> {
        let mut rdns = Vec::new();
        for rdn_text in split_unescaped(text, ',') {
            let mut rdn = Vec::new();
            for attr in split_unescaped(rdn_text, '+') {
                rdn.push(parse_attribute(attr)?);
            }
            rdn.sort();
            rdns.push(rdn);
        }
        Ok(Dn { rdns })
    }

    /// Whether `name` is this name (in either RDN order).
    pub fn matches(&self, name: &X509Name<'_>) -> bool {
        let Some(theirs) = rdns_of(name) else { return false };
        theirs == self.rdns || theirs.iter().eq(self.rdns.iter().rev())
    }
}

/// A certificate named by its issuer and serial number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSerial {
    pub issuer: Dn,
    /// Big-endian, without leading zero bytes (DER's sign byte included).
    pub serial: Vec<u8>,
    /// The entry as the administrator wrote it, for Status.
    pub issuer_text: String,
}

impl IssuerSerial {
    /// Parses the two texts of a policy entry: an issuer name and a serial
    /// number in hex (colons allowed, as `openssl x509 -serial` and
    /// `psm cert show` print it).
    pub fn parse(issuer: &str, serial: &str) -> Result<IssuerSerial, String> {
        let dn = Dn::parse(issuer)?;
        let hex_digits: String = serial.trim().trim_start_matches("0x").replace(':', "");
        let mut digits = hex_digits.trim_start_matches('0').to_string();
        if digits.len() % 2 == 1 {
            digits.insert(0, '0');
        }
        let bytes = hex::decode(&digits)
            .map_err(|_| format!("serial {serial:?} is not a serial number in hex, like \"0a:1b:2c\""))?;
        if hex_digits.is_empty() || bytes.len() > 20 {
            return Err(format!("serial {serial:?} is not a serial number in hex (at most 20 bytes)"));
        }
        Ok(IssuerSerial { issuer: dn, serial: bytes, issuer_text: issuer.to_string() })
    }

    /// The serial number in hex, for Status.
    pub fn serial_hex(&self) -> String {
        if self.serial.is_empty() { "00".to_string() } else { hex::encode(&self.serial) }
    }

    /// Whether `der` is the certificate this entry names.
    pub fn matches_der(&self, der: &[u8]) -> bool {
        X509Certificate::from_der(der).is_ok_and(|(_, cert)| self.matches(&cert))
    }

    pub fn matches(&self, cert: &X509Certificate<'_>) -> bool {
        let raw = cert.raw_serial();
        let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
        raw[start..] == self.serial[..] && self.issuer.matches(cert.issuer())
    }
}

/// Splits at `sep` where it is not escaped by a backslash.
fn split_unescaped(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_attribute(text: &str) -> Result<(String, String), String> {
    let Some((kind, value)) = text.split_once('=') else {
        let t = text.trim();
        return Err(if t.is_empty() {
            "an empty RDN (two commas in a row, or a comma at either end?)".to_string()
        } else {
            format!("{t:?} is not type=value (a comma inside a value is written \\,)")
        });
    };
    let kind = kind.trim();
    let oid = attribute_oid(kind)?;
    let value = value.trim_start();
    if value.starts_with('#') {
        return Err(format!("{kind}: values in hex (#...) are not supported; write the value as text"));
    }
    let value = unescape(value)?;
    let value = normalize(&value);
    if value.is_empty() {
        return Err(format!("{kind} has an empty value"));
    }
    Ok((oid, value))
}

fn attribute_oid(kind: &str) -> Result<String, String> {
    if !kind.is_empty() && kind.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return if kind.contains('.') {
            Ok(kind.to_string())
        } else {
            Err(format!("{kind:?} is not an OID"))
        };
    }
    if let Some((_, oid)) = KEYWORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(kind)) {
        return Ok(oid.to_string());
    }
    if let Some((oid, _)) =
        x509_parser::objects::oid_registry().iter().find(|(_, e)| e.sn().eq_ignore_ascii_case(kind))
    {
        return Ok(oid.to_id_string());
    }
    let best =
        KEYWORDS.iter().map(|(k, _)| *k).min_by_key(|k| strsim(kind, k)).filter(|k| strsim(kind, k) <= 2);
    Err(match best {
        Some(k) => format!("unknown attribute type {kind:?} (did you mean \"{k}\"?)"),
        None => format!("unknown attribute type {kind:?} (use CN, O, OU, C, L, ST, DC, ... or a dotted OID)"),
    })
}

/// Case-insensitive edit distance, for "did you mean".
fn strsim(a: &str, b: &str) -> usize {
    crate::policy::distance(&a.to_ascii_lowercase(), &b.to_ascii_lowercase())
}

/// RFC 4514 escapes: `\` and two hex digits is a byte (of UTF-8); `\` and
/// any other character is that character.
fn unescape(value: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let rest = chars.as_str();
        match rest.get(..2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) => {
                bytes.push(b);
                chars = rest[2..].chars();
            }
            None => match chars.next() {
                Some(e) => {
                    let mut buf = [0; 4];
                    bytes.extend_from_slice(e.encode_utf8(&mut buf).as_bytes());
                }
                None => return Err(format!("{value:?} ends with a lone backslash")),
            },
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("{value:?}: the \\XX escapes are not UTF-8"))
}

/// RFC 5280 7.1's comparison, simplified as NSS and OpenSSL do it: case
/// folded, leading, trailing and repeated spaces ignored.
fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A certificate name as comparable RDNs; None if a value is no string
/// (such a name matches no text).
fn rdns_of(name: &X509Name<'_>) -> Option<Vec<Rdn>> {
    name.iter()
        .map(|rdn| {
            let mut attrs = rdn
                .iter()
                .map(|a| Some((a.attr_type().to_id_string(), normalize(&attribute_text(a)?))))
                .collect::<Option<Rdn>>()?;
            attrs.sort();
            Some(attrs)
        })
        .collect()
}

fn attribute_text(a: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::asn1_rs::Tag;
    let v = a.attr_value();
    match v.tag() {
        Tag::BmpString => {
            let units: Option<Vec<u16>> =
                v.data.chunks(2).map(|c| Some(u16::from_be_bytes([c[0], *c.get(1)?]))).collect();
            String::from_utf16(&units?).ok()
        }
        Tag::NumericString
        | Tag::PrintableString
        | Tag::Utf8String
        | Tag::Ia5String
        | Tag::T61String
        | Tag::VisibleString => std::str::from_utf8(v.data).ok().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(issuer: &[(rcgen::DnType, &str)], serial: &[u8]) -> Vec<u8> {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in issuer {
            ca.distinguished_name.push(t.clone(), *v);
        }
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        let key = rcgen::KeyPair::generate().unwrap();
        leaf.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    #[test]
    fn an_issuer_matches_in_either_order_whatever_the_case_and_spacing() {
        use rcgen::DnType::*;
        let der = cert(
            &[(CountryName, "US"), (OrganizationName, "Evil,  Corp"), (CommonName, "Evil CA")],
            &[0x0a, 0x1b],
        );
        for text in [
            "C=US, O=Evil\\,  Corp, CN=Evil CA",
            "CN=evil ca,O=Evil\\2c Corp,C=us",
            "countryName = US , organizationName=EVIL\\, CORP, 2.5.4.3=Evil   CA",
        ] {
            let e = IssuerSerial::parse(text, "0a:1b").unwrap();
            assert!(e.matches_der(&der), "{text}");
        }
        assert!(
            IssuerSerial::parse("C=US, O=Evil\\, Corp, CN=Evil CA", "00:0A1B").unwrap().matches_der(&der)
        );
        // Another serial, another name, or a name in another shape: no match.
        assert!(!IssuerSerial::parse("C=US, O=Evil\\, Corp, CN=Evil CA", "0a:1c").unwrap().matches_der(&der));
        assert!(!IssuerSerial::parse("C=US, O=Evil\\, Corp, CN=Good CA", "0a1b").unwrap().matches_der(&der));
        assert!(!IssuerSerial::parse("O=Evil\\, Corp, CN=Evil CA", "0a1b").unwrap().matches_der(&der));
        assert!(!IssuerSerial::parse("C=US, CN=Evil CA, O=Evil\\, Corp", "0a1b").unwrap().matches_der(&der));
        assert!(!IssuerSerial::parse("C=US + O=Evil\\, Corp, CN=Evil CA", "0a1b").unwrap().matches_der(&der));
    }

    #[test]
    fn bad_names_and_serials_are_explained() {
        let e = Dn::parse("CN=Evil CA, Inc.").unwrap_err();
        assert!(e.contains("\\,"), "{e}");
        let e = Dn::parse("CM=Evil CA").unwrap_err();
        assert!(e.contains("did you mean \"CN\""), "{e}");
        assert!(Dn::parse("").is_err() && Dn::parse("CN=a,,O=b").is_err() && Dn::parse("CN=").is_err());
        assert!(Dn::parse("CN=#0403414243").unwrap_err().contains("not supported"));
        let e = IssuerSerial::parse("CN=a", "xyz").unwrap_err();
        assert!(e.contains("hex"), "{e}");
        assert!(IssuerSerial::parse("CN=a", "").is_err());
        assert!(IssuerSerial::parse("CN=a", &"ab".repeat(21)).is_err());
    }
}
