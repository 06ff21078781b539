//! E-mail address matching for S/MIME, which webpki leaves to its caller.
//!
//! The addresses of a certificate are its SAN rfc822Name entries and the
//! emailAddress attributes of its subject; RFC 8550 section 3 makes
//! receiving agents recognise both. An address matches when its local part
//! is identical (RFC 5321 lets the receiving domain treat it as case
//! sensitive, so we do not guess) and its domain is equal ignoring ASCII case
//! (domains are case-insensitive, RFC 4343).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Ok if `leaf` is issued to `wanted`; otherwise says which addresses it has.
pub(super) fn check(leaf: &X509Certificate<'_>, wanted: &str) -> Result<(), String> {
    let subject = leaf.subject().to_string();
    let Some(wanted_parts) = split(wanted) else {
        return Err(format!("'{wanted}' is not an e-mail address (local-part@domain)"));
    };
    let mut presented: Vec<&str> = Vec::new();
    match leaf.subject_alternative_name() {
        Ok(Some(san)) => presented.extend(san.value.general_names.iter().filter_map(|name| match name {
            GeneralName::RFC822Name(addr) => Some(*addr),
            _ => None,
        })),
        Ok(None) => {}
        Err(e) => return Err(format!("the subject alternative names of {subject} could not be parsed: {e}")),
    }
    presented.extend(leaf.subject().iter_email().filter_map(|attr| attr.as_str().ok()));

    if presented.iter().filter_map(|addr| split(addr)).any(|parts| same_mailbox(parts, wanted_parts)) {
        return Ok(());
    }
    if presented.is_empty() {
        Err(format!("certificate {subject} names no e-mail address, so it is not valid for {wanted}"))
    } else {
        Err(format!("certificate {subject} is valid for {}, not for {wanted}", presented.join(", ")))
    }
}

/// Splits at the last '@' (a quoted local part may contain '@').
fn split(addr: &str) -> Option<(&str, &str)> {
    let (local, domain) = addr.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

fn same_mailbox(presented: (&str, &str), wanted: (&str, &str)) -> bool {
    presented.0 == wanted.0 && presented.1.eq_ignore_ascii_case(wanted.1)
}
