//! PKCS#11 URIs (RFC 7512): parsing `pkcs11:token=...;object=...?module-name=...`
//! and matching the parsed attributes against tokens and objects.
//!
//! A PIN never travels in a URI: `pin-value` is refused, because URIs end
//! up in logs, shell history and configuration files. Error messages name
//! attributes, never their values.

use psm::{Code, Error};

use super::{ObjectInfo, ObjectType, TokenInfo};

/// Longest URI we parse; real ones are a few hundred bytes.
pub const MAX_URI_LEN: usize = 4096;

const SCHEME: &str = "pkcs11:";

/// A parsed PKCS#11 URI. Every attribute is optional; an absent attribute
/// matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub library_manufacturer: Option<String>,
    pub library_description: Option<String>,
    /// `library-version=M` or `M.N`; `M` alone means `M.0` (RFC 7512 2.3).
    pub library_version: Option<(u8, u8)>,
    pub slot_description: Option<String>,
    pub slot_manufacturer: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    /// `CKA_ID`: arbitrary bytes, percent-encoded in the URI.
    pub id: Option<Vec<u8>>,
    pub object_type: Option<ObjectType>,
    /// Where the application should read the PIN from (a file or a
    /// `file:` URI); psmd asks the user instead and only reports it.
    pub pin_source: Option<String>,
    pub module_name: Option<String>,
    pub module_path: Option<String>,
}

/// True if `s` names something with a PKCS#11 URI rather than a nickname.
pub fn is_pkcs11_uri(s: &str) -> bool {
    s.len() >= SCHEME.len() && s[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::PSM_ERR_INVALID_ARGUMENT, msg)
}

impl Pkcs11Uri {
    pub fn parse(s: &str) -> Result<Pkcs11Uri, Error> {
        if s.len() > MAX_URI_LEN {
            return Err(invalid(format!(
                "PKCS#11 URI is {} bytes long; at most {MAX_URI_LEN} are accepted",
                s.len()
            )));
        }
        if !is_pkcs11_uri(s) {
            return Err(invalid("not a PKCS#11 URI: it must start with \"pkcs11:\" (RFC 7512)"));
        }
        let rest = &s[SCHEME.len()..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        if !path.is_empty() {
            for attr in path.split(';') {
                uri.path_attribute(attr)?;
            }
        }
        if let Some(query) = query {
            for attr in query.split('&') {
                uri.query_attribute(attr)?;
            }
        }
        Ok(uri)
    }

    fn path_attribute(&mut self, attr: &str) -> Result<(), Error> {
        let (name, raw) = split_attribute(attr, "path")?;
        check_chars(name, raw, is_path_char)?;
        let text = |raw: &str| decode_text(name, raw);
        match name {
            "token" => set(&mut self.token, name, text(raw)?),
            "manufacturer" => set(&mut self.manufacturer, name, text(raw)?),
            "model" => set(&mut self.model, name, text(raw)?),
            "serial" => set(&mut self.serial, name, text(raw)?),
            "library-manufacturer" => set(&mut self.library_manufacturer, name, text(raw)?),
            "library-description" => set(&mut self.library_description, name, text(raw)?),
            "library-version" => set(&mut self.library_version, name, parse_version(&text(raw)?)?),
            "slot-description" => set(&mut self.slot_description, name, text(raw)?),
            "slot-manufacturer" => set(&mut self.slot_manufacturer, name, text(raw)?),
            "slot-id" => {
                let v = text(raw)?;
                let id = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| invalid("PKCS#11 URI attribute slot-id must be a decimal number"))?;
                set(&mut self.slot_id, name, id)
            }
            "object" => set(&mut self.object, name, text(raw)?),
            "id" => set(&mut self.id, name, percent_decode(name, raw)?),
            "type" => {
                let t = match text(raw)?.as_str() {
                    "cert" => ObjectType::Certificate,
                    "private" => ObjectType::PrivateKey,
                    "public" => ObjectType::PublicKey,
                    "secret-key" => ObjectType::SecretKey,
                    "data" => ObjectType::Data,
                    _ => {
                        return Err(invalid(
                            "PKCS#11 URI attribute type must be cert, private, public, secret-key or data",
                        ));
                    }
                };
                set(&mut self.object_type, name, t)
            }
            // RFC 7512 allows vendor-specific path attributes; one we do not
            // know could narrow the match in a way we would ignore, so the
            // URI is refused rather than matched too widely.
            _ => Err(Error::new(
                Code::PSM_ERR_UNSUPPORTED,
                format!(
                    "PKCS#11 URI path attribute {name:?} is unknown or vendor-specific; psm cannot match on it"
                ),
            )),
        }
    }

    fn query_attribute(&mut self, attr: &str) -> Result<(), Error> {
        let (name, raw) = split_attribute(attr, "query")?;
        if name == "pin-value" {
            // Checked before anything else reads the value, so no error or
            // log line below can ever carry it.
            return Err(Error::new(
                Code::PSM_ERR_POLICY,
                "PKCS#11 URI carries a PIN (pin-value): refused; psm asks for token PINs itself \
                 and never takes them from URIs, which end up in logs and shell history",
            ));
        }
        check_chars(name, raw, is_query_char)?;
        let text = |raw: &str| decode_text(name, raw);
        match name {
            "pin-source" => set(&mut self.pin_source, name, text(raw)?),
            "module-name" => set(&mut self.module_name, name, text(raw)?),
            "module-path" => set(&mut self.module_path, name, text(raw)?),
            // Query attributes only tell the consumer how to find or open
            // the object; one we do not know cannot widen a match.
            _ => Ok(()),
        }
    }

    /// True if the module (by its file) and token named here match `token`.
    pub fn matches_token(&self, token: &TokenInfo) -> bool {
        let lib = &token.library;
        eq(&self.token, &token.label)
            && eq(&self.manufacturer, &token.manufacturer)
            && eq(&self.model, &token.model)
            && eq(&self.serial, &token.serial)
            && eq(&self.library_manufacturer, &lib.manufacturer)
            && eq(&self.library_description, &lib.description)
            && self.library_version.is_none_or(|v| v == lib.version)
            && eq(&self.slot_description, &token.slot_description)
            && eq(&self.slot_manufacturer, &token.slot_manufacturer)
            && self.slot_id.is_none_or(|id| id == token.slot)
            && self.module_path.as_deref().is_none_or(|p| std::path::Path::new(p) == token.module)
            && self.module_name.as_deref().is_none_or(|n| Some(n) == module_name(&token.module).as_deref())
    }

    /// True if the object attributes named here (object, id, type) match.
    pub fn matches_object(&self, object: &ObjectInfo) -> bool {
        eq(&self.object, &object.label)
            && self.id.as_deref().is_none_or(|id| id == object.id.as_slice())
            && self.object_type.is_none_or(|t| t == object.class)
    }
}

fn eq(want: &Option<String>, have: &str) -> bool {
    want.as_deref().is_none_or(|w| w == have)
}

/// RFC 7512 `module-name`: the file name without a `lib` prefix and
/// without its suffixes (`/usr/lib/softhsm/libsofthsm2.so` → `softhsm2`).
pub fn module_name(path: &std::path::Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let file = file.strip_prefix("lib").unwrap_or(file);
    Some(file.split('.').next().unwrap_or(file).to_owned())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which
/// every RFC 7512 parser reads back unchanged.
fn encode(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn push_attr(out: &mut String, name: &str, value: &[u8]) {
    if !out.ends_with(':') {
        out.push(';');
    }
    out.push_str(name);
    out.push('=');
    encode(out, value);
}

/// The URI that names `token` by what identifies it (RFC 7512 2.3 lists
/// these four for a token): model, manufacturer, serial and label.
pub fn token_uri(token: &TokenInfo) -> String {
    let mut out = String::from(SCHEME);
    push_attr(&mut out, "model", token.model.as_bytes());
    push_attr(&mut out, "manufacturer", token.manufacturer.as_bytes());
    push_attr(&mut out, "serial", token.serial.as_bytes());
    push_attr(&mut out, "token", token.label.as_bytes());
    out
}

/// The URI of one object on `token`: the token's URI, the object's `id`
/// and label when it has them, and its type.
pub fn object_uri(token: &TokenInfo, object: &ObjectInfo) -> String {
    let mut out = token_uri(token);
    if !object.id.is_empty() {
        push_attr(&mut out, "id", &object.id);
    }
    if !object.label.is_empty() {
        push_attr(&mut out, "object", object.label.as_bytes());
    }
    let kind = match object.class {
        ObjectType::Certificate => "cert",
        ObjectType::PrivateKey => "private",
        ObjectType::PublicKey => "public",
        ObjectType::SecretKey => "secret-key",
        ObjectType::Data => "data",
    };
    push_attr(&mut out, "type", kind.as_bytes());
    out
}

fn split_attribute<'a>(attr: &'a str, part: &str) -> Result<(&'a str, &'a str), Error> {
    let (name, value) = attr
        .split_once('=')
        .ok_or_else(|| invalid(format!("PKCS#11 URI {part} attribute without '=' (expected name=value)")))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(invalid(format!(
            "PKCS#11 URI {part} attribute name must be letters, digits, '-' and '_' (RFC 7512 2.3)"
        )));
    }
    Ok((name, value))
}

fn set<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(invalid(format!("PKCS#11 URI attribute {name} appears twice (RFC 7512 2.3 forbids it)")));
    }
    *slot = Some(value);
    Ok(())
}

/// RFC 7512 `pk11-res-avail`, allowed unencoded in both parts.
fn is_reserved_avail(b: u8) -> bool {
    matches!(b, b':' | b'[' | b']' | b'@' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_path_char(b: u8) -> bool {
    is_unreserved(b) || is_reserved_avail(b) || b == b'&' || b == b'%'
}

fn is_query_char(b: u8) -> bool {
    is_unreserved(b) || is_reserved_avail(b) || matches!(b, b'/' | b'?' | b'|' | b'%')
}

fn check_chars(name: &str, raw: &str, allowed: fn(u8) -> bool) -> Result<(), Error> {
    match raw.bytes().position(|b| !allowed(b)) {
        None => Ok(()),
        Some(_) => Err(invalid(format!(
            "PKCS#11 URI attribute {name} has a character that must be percent-encoded \
             (spaces, non-ASCII, '/', '?', ';' and '#' are written %XX; RFC 7512 2.3)"
        ))),
    }
}

fn percent_decode(name: &str, raw: &str) -> Result<Vec<u8>, Error> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    invalid(format!("PKCS#11 URI attribute {name} has a '%' not followed by two hex digits"))
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_text(name: &str, raw: &str) -> Result<String, Error> {
    String::from_utf8(percent_decode(name, raw)?)
        .map_err(|_| invalid(format!("PKCS#11 URI attribute {name} is not UTF-8 once percent-decoded")))
}

fn parse_version(v: &str) -> Result<(u8, u8), Error> {
    let bad = || invalid("PKCS#11 URI attribute library-version must be M or M.N (decimal, 0 to 255)");
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u8>().ok()).flatten()
    };
    match v.split_once('.') {
        Some((major, minor)) => Ok((num(major).ok_or_else(bad)?, num(minor).ok_or_else(bad)?)),
        None => Ok((num(v).ok_or_else(bad)?, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Pkcs11Uri {
        Pkcs11Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn refused(s: &str) -> Error {
        Pkcs11Uri::parse(s).expect_err(s)
    }

    #[test]
    fn uris_psm_writes_parse_back_and_match_what_they_name() {
        let token = TokenInfo {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            library: Default::default(),
            slot: 7,
            slot_description: String::new(),
            slot_manufacturer: String::new(),
            label: "Alice's card; #1 = 100%".into(),
            manufacturer: "Snake Oil, Inc.".into(),
            model: "SoftHSM v2".into(),
            serial: "0a1b".into(),
            flags: Default::default(),
        };
        let object =
            ObjectInfo { class: ObjectType::Certificate, label: "sign/é".into(), id: vec![0, 0x25, 0xff] };
        let u = parse(&token_uri(&token));
        assert_eq!(u.token.as_deref(), Some(token.label.as_str()));
        assert!(u.matches_token(&token));
        let o = parse(&object_uri(&token, &object));
        assert!(o.matches_token(&token) && o.matches_object(&object));
        assert_eq!(o.id.as_deref(), Some(&[0, 0x25, 0xff][..]));
        let other = ObjectInfo { class: ObjectType::PrivateKey, ..object };
        assert!(!o.matches_object(&other));
    }

    #[test]
    fn rfc7512_examples_parse() {
        // The examples of RFC 7512 section 3.
        assert_eq!(parse("pkcs11:"), Pkcs11Uri::default());
        assert_eq!(parse("pkcs11:object=my-pubkey;type=public").object_type, Some(ObjectType::PublicKey));
        let u = parse("pkcs11:object=my-key;type=private?pin-source=file:/etc/token");
        assert_eq!(u.object.as_deref(), Some("my-key"));
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token"));
        let u = parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;\
             model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        );
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.model.as_deref(), Some("1.0"));
        assert_eq!(u.id.as_deref(), Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..]));
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(u.object_type, Some(ObjectType::Certificate));
        let u = parse("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11");
        assert_eq!(u.module_name.as_deref(), Some("mypkcs11"));
        let u = parse("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1");
        assert_eq!(u.module_path.as_deref(), Some("/mnt/libmypkcs11.so.1"));
        let u = parse("pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.");
        assert_eq!(u.token.as_deref(), Some("Software PKCS#11 softtoken"));
        let u = parse("pkcs11:slot-description=Sun%20Metaslot");
        assert_eq!(u.slot_description.as_deref(), Some("Sun Metaslot"));
        let u = parse(
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
        );
        assert_eq!(u.library_version, Some((1, 23)));
        assert_eq!(u.library_description.as_deref(), Some("Soft Token Library"));
        let u = parse(
            "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ef%0F",
        );
        assert_eq!(u.token.as_deref(), Some("My token% created by Joe"));
        assert_eq!(u.library_version, Some((3, 0)));
        assert_eq!(u.id.as_deref(), Some(&[1, 2, 3, 0xba, 0xdd, 0xef, 0x0f][..]));
        // Vendor query attributes are ignored; a query may hold '/' and '?'.
        let u =
            parse("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert");
        assert_eq!(u.token.as_deref(), Some("A name with a substring %;"));
        parse(
            "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
        );
        // A vendor attribute in the query is ignored; in the path it could
        // narrow the match, so it is refused rather than ignored.
        let u = parse(
            "pkcs11:token=my-token;object=my-certificate;type=cert?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
        );
        assert_eq!(u.token.as_deref(), Some("my-token"));
        let e = refused(
            "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
        );
        assert_eq!(e.code, Code::PSM_ERR_UNSUPPORTED);
        assert!(e.message.contains("vendor-aaa"), "{}", e.message);
        parse("pkcs11:slot-id=18446744073709551615");
        parse("pkcs11:object=x?x-vendor=a/b?c|d");
    }

    #[test]
    fn scheme_is_case_insensitive_and_required() {
        assert_eq!(parse("PKCS11:token=a").token.as_deref(), Some("a"));
        assert!(is_pkcs11_uri("Pkcs11:"));
        assert!(!is_pkcs11_uri("pkcs1"));
        assert!(refused("token=a").message.contains("must start with"));
        assert!(refused("http://pkcs11:token=a").message.contains("must start with"));
    }

    #[test]
    fn pin_value_is_refused_without_echoing_it() {
        for uri in [
            "pkcs11:token=t?pin-value=s3cret-PIN",
            "pkcs11:token=t?module-name=x&pin-value=s3cret-PIN",
            "pkcs11:?pin-value=s3cret-PIN%zz",
            "pkcs11:token=t?pin-value=s3cret-PIN&pin-value=other",
        ] {
            let e = refused(uri);
            assert_eq!(e.code, Code::PSM_ERR_POLICY, "{uri}");
            assert!(e.message.contains("pin-value"), "{}", e.message);
            assert!(!e.message.contains("s3cret"), "the PIN leaked into: {}", e.message);
            assert!(!format!("{e:?}").contains("s3cret"));
        }
    }

    #[test]
    fn hostile_inputs_are_refused_with_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("pkcs11:token=a;token=b", "appears twice"),
            ("pkcs11:id=%01;id=%02", "appears twice"),
            ("pkcs11:token=%4", "two hex digits"),
            ("pkcs11:token=%", "two hex digits"),
            ("pkcs11:token=%zz", "two hex digits"),
            ("pkcs11:token=%+1", "two hex digits"),
            ("pkcs11:token=%C3%28", "not UTF-8"),
            ("pkcs11:token=has space", "percent-encoded"),
            ("pkcs11:token=caf\u{e9}", "percent-encoded"),
            ("pkcs11:token=a/b", "percent-encoded"),
            ("pkcs11:token=a#b", "percent-encoded"),
            ("pkcs11:token=a\nb", "percent-encoded"),
            ("pkcs11:token=a\0b", "percent-encoded"),
            ("pkcs11:token", "without '='"),
            ("pkcs11:token=a;", "without '='"),
            ("pkcs11:;token=a", "without '='"),
            ("pkcs11:=a", "attribute name"),
            ("pkcs11:to%6Ben=a", "attribute name"),
            ("pkcs11:colour=red", "unknown or vendor-specific"),
            ("pkcs11:x-vendor=1", "unknown or vendor-specific"),
            ("pkcs11:type=key", "type must be"),
            ("pkcs11:type=", "type must be"),
            ("pkcs11:slot-id=-1", "decimal number"),
            ("pkcs11:slot-id=18446744073709551616", "decimal number"),
            ("pkcs11:slot-id=", "decimal number"),
            ("pkcs11:slot-id=+1", "decimal number"),
            ("pkcs11:library-version=1.2.3", "library-version"),
            ("pkcs11:library-version=256", "library-version"),
            ("pkcs11:library-version=.1", "library-version"),
            ("pkcs11:library-version=1.", "library-version"),
            ("pkcs11:module-path=a", "unknown or vendor-specific"),
            ("pkcs11:?module-path=/a&module-path=/b", "appears twice"),
        ];
        for (uri, why) in cases {
            let e = refused(uri);
            assert!(matches!(e.code, Code::PSM_ERR_INVALID_ARGUMENT | Code::PSM_ERR_UNSUPPORTED), "{uri}");
            assert!(e.message.contains(why), "{uri:?}: expected {why:?} in {:?}", e.message);
        }
        let long = format!("pkcs11:object={}", "a".repeat(MAX_URI_LEN));
        assert!(refused(&long).message.contains("at most"));
        // A '%' that would reach past the end of a multi-byte character
        // must not panic on a char boundary.
        refused("pkcs11:token=%\u{e9}");
    }

    #[test]
    fn matches_token_and_object_by_every_named_attribute() {
        let token = TokenInfo {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            library: super::super::LibraryInfo {
                manufacturer: "SoftHSM".into(),
                description: "Implementation of PKCS11".into(),
                version: (2, 6),
            },
            slot: 7,
            slot_description: "SoftHSM slot ID 0x7".into(),
            slot_manufacturer: "SoftHSM project".into(),
            label: "psm test".into(),
            manufacturer: "SoftHSM project".into(),
            model: "SoftHSM v2".into(),
            serial: "0123abcd".into(),
            flags: Default::default(),
        };
        for yes in [
            "pkcs11:",
            "pkcs11:token=psm%20test",
            "pkcs11:token=psm%20test;serial=0123abcd;model=SoftHSM%20v2;manufacturer=SoftHSM%20project",
            "pkcs11:slot-id=7;library-version=2.6;library-manufacturer=SoftHSM",
            "pkcs11:token=psm%20test?module-name=softhsm2",
            "pkcs11:?module-path=/usr/lib/softhsm/libsofthsm2.so",
        ] {
            assert!(parse(yes).matches_token(&token), "{yes}");
        }
        for no in [
            "pkcs11:token=psm",
            "pkcs11:token=PSM%20TEST",
            "pkcs11:serial=0123abce",
            "pkcs11:slot-id=8",
            "pkcs11:library-version=2",
            "pkcs11:?module-name=opensc-pkcs11",
            "pkcs11:?module-path=/usr/lib/other.so",
        ] {
            assert!(!parse(no).matches_token(&token), "{no}");
        }
        let cert = ObjectInfo { class: ObjectType::Certificate, label: "me".into(), id: vec![0xab, 0x01] };
        assert!(parse("pkcs11:object=me;type=cert;id=%ab%01").matches_object(&cert));
        assert!(parse("pkcs11:token=anything").matches_object(&cert));
        assert!(!parse("pkcs11:object=me;type=private").matches_object(&cert));
        assert!(!parse("pkcs11:id=%ab").matches_object(&cert));
        assert!(!parse("pkcs11:object=Me").matches_object(&cert));
    }

    #[test]
    fn module_name_strips_lib_prefix_and_suffixes() {
        let name = |p: &str| module_name(std::path::Path::new(p));
        assert_eq!(name("/usr/lib/softhsm/libsofthsm2.so").as_deref(), Some("softhsm2"));
        assert_eq!(name("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so").as_deref(), Some("opensc-pkcs11"));
        assert_eq!(name("/mnt/libmypkcs11.so.1").as_deref(), Some("mypkcs11"));
    }
}
