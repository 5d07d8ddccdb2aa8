//! The few pieces of DER that verification reads: a public key's algorithm and bits, and a
//! certificate's validity start and extensions. Every read is bounded by its input and returns
//! `None` on anything malformed: certificates come from the registry, untrusted. Public for
//! the fuzz target (`fuzz/src/bin/der.rs`), not as an API.

/// A parsed tag-length-value.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The identifier octet (only low tag numbers occur in what is read here).
    pub tag: u8,
    /// The value.
    pub content: &'a [u8],
}

/// `SEQUENCE`.
pub const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const BIT_STRING: u8 = 0x03;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[3]` explicit, constructed: a certificate's extensions.
const EXTENSIONS: u8 = 0xa3;
/// `[0]` explicit, constructed: a certificate's version.
const VERSION: u8 = 0xa0;

/// Reads one element off the front of `input`: the element and what follows it.
pub fn next(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    // High tag numbers (0x1f) never occur in the structures read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        // Four length octets are 4 GiB: more is no certificate.
        if count == 0 || count > 4 {
            return None;
        }
        let (octets, rest) = rest.split_at_checked(count)?;
        let len = octets.iter().try_fold(0usize, |n, b| {
            n.checked_mul(256)?.checked_add(usize::from(*b))
        })?;
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((Tlv { tag, content }, rest))
}

/// The elements of a constructed value, in order; stops at the first malformed one.
pub fn children(mut content: &[u8]) -> impl Iterator<Item = Tlv<'_>> {
    std::iter::from_fn(move || {
        let (tlv, rest) = next(content)?;
        content = rest;
        Some(tlv)
    })
}

/// Reads one element that must have tag `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (tlv, rest) = next(input)?;
    (tlv.tag == tag).then_some((tlv.content, rest))
}

/// A `SubjectPublicKeyInfo`'s parts.
pub struct Spki<'a> {
    /// The algorithm OID.
    pub algorithm: &'a [u8],
    /// Its parameter OID (an EC key's curve), if any.
    pub param: Option<&'a [u8]>,
    /// The key bits (the BIT STRING without its unused-bits octet).
    pub key: &'a [u8],
}

/// Reads a DER `SubjectPublicKeyInfo`.
pub fn spki_parts(spki: &[u8]) -> Option<Spki<'_>> {
    let (body, _) = expect(spki, SEQUENCE)?;
    let (algorithm, rest) = expect(body, SEQUENCE)?;
    let (bits, _) = expect(rest, BIT_STRING)?;
    let (oid, params) = expect(algorithm, OID)?;
    let param = next(params)
        .filter(|(p, _)| p.tag == OID)
        .map(|(p, _)| p.content);
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then_some(Spki {
        algorithm: oid,
        param,
        key,
    })
}

/// A certificate's `tbsCertificate` elements: validity and the extensions, as found.
pub struct TbsParts<'a> {
    /// `notBefore`, seconds since the epoch.
    pub not_before: i64,
    /// Each extension's `(oid, value)`.
    pub extensions: Vec<(&'a [u8], &'a [u8])>,
}

/// Reads a DER certificate's validity start and extensions.
pub fn tbs_parts(cert: &[u8]) -> Option<TbsParts<'_>> {
    let (body, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(body, SEQUENCE)?;
    let mut fields = children(tbs).peekable();
    if fields.peek().is_some_and(|f| f.tag == VERSION) {
        fields.next();
    }
    // serialNumber, signature, issuer, then validity.
    let validity = fields.nth(3).filter(|v| v.tag == SEQUENCE)?;
    let not_before = next(validity.content).and_then(|(t, _)| time(t))?;
    let mut extensions = Vec::new();
    if let Some(wrapped) = fields.find(|f| f.tag == EXTENSIONS) {
        let (list, _) = expect(wrapped.content, SEQUENCE)?;
        for ext in children(list) {
            let (oid, rest) = expect(ext.content, OID)?;
            let rest = match next(rest) {
                Some((b, after)) if b.tag == BOOLEAN => after,
                _ => rest,
            };
            let (value, _) = expect(rest, OCTET_STRING)?;
            extensions.push((oid, value));
        }
    }
    Some(TbsParts {
        not_before,
        extensions,
    })
}

/// `UTCTime` (`YYMMDDHHMMSSZ`) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`), as Unix seconds.
fn time(t: Tlv<'_>) -> Option<i64> {
    let text = std::str::from_utf8(t.content).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match t.tag {
        UTC_TIME if text.len() == 12 => {
            let yy: i32 = text.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 14 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(year, field(0)?, field(2)?)?;
    let at = date.and_hms_opt(field(4)?, field(6)?, field(8)?)?;
    Some(at.and_utc().timestamp())
}

/// The URIs and e-mail addresses of a `subjectAltName` extension's value.
pub fn san_identities(value: &[u8]) -> Vec<String> {
    let Some((names, _)) = expect(value, SEQUENCE) else {
        return Vec::new();
    };
    children(names)
        // [1] rfc822Name and [6] uniformResourceIdentifier, both IA5 strings.
        .filter(|n| n.tag == 0x81 || n.tag == 0x86)
        .filter_map(|n| std::str::from_utf8(n.content).ok())
        .map(str::to_string)
        .collect()
}

/// A DER string (`UTF8String`, `IA5String`, `PrintableString`) as text.
pub fn string(value: &[u8]) -> Option<String> {
    let (tlv, _) = next(value)?;
    matches!(tlv.tag, 0x0c | 0x16 | 0x13)
        .then(|| std::str::from_utf8(tlv.content).ok().map(str::to_string))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_input_or_over_four_octets_are_refused() {
        assert!(next(&[0x30, 0x05, 1, 2]).is_none());
        assert!(next(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]).is_none());
        assert!(next(&[0x30, 0x80]).is_none());
        assert!(next(&[0x1f, 0x00]).is_none());
        assert!(next(&[]).is_none());
        let (tlv, rest) = next(&[0x04, 0x81, 0x02, 7, 8, 9]).unwrap();
        assert_eq!(
            (tlv.tag, tlv.content, rest),
            (0x04, &[7u8, 8][..], &[9u8][..])
        );
    }

    #[test]
    fn both_time_forms_read_as_unix_seconds() {
        let utc = Tlv {
            tag: UTC_TIME,
            content: b"240102030405Z",
        };
        assert_eq!(time(utc), Some(1_704_164_645));
        let generalized = Tlv {
            tag: GENERALIZED_TIME,
            content: b"20240102030405Z",
        };
        assert_eq!(time(generalized), Some(1_704_164_645));
        let bad = Tlv {
            tag: UTC_TIME,
            content: b"24010203040+Z",
        };
        assert_eq!(time(bad), None);
    }

    #[test]
    fn a_subject_alt_name_gives_its_uris_and_emails_only() {
        // SEQUENCE { [6] "https://a/b", [2] "dns.example", [1] "me@x" }
        let mut names = vec![0x86, 11];
        names.extend_from_slice(b"https://a/b");
        names.extend_from_slice(&[0x82, 11]);
        names.extend_from_slice(b"dns.example");
        names.extend_from_slice(&[0x81, 4]);
        names.extend_from_slice(b"me@x");
        let mut value = vec![SEQUENCE, names.len() as u8];
        value.extend_from_slice(&names);
        assert_eq!(san_identities(&value), ["https://a/b", "me@x"]);
    }
}
