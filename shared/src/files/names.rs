//! What a file is called and what it declares to be: a name made safe to store and show, a
//! content type in the form S3 stores it, and the `Content-Disposition` a download carries.

use utoipa::openapi::schema::{ObjectBuilder, Type};

use crate::error::FieldError;

/// A file's name as shown and offered on download: the client's name with path separators,
/// control and invisible formatting characters (bidi overrides that make `exe.pdf` read
/// `fdp.exe`, zero-width spaces) taken out, white space collapsed, and no leading or trailing
/// dots or spaces; `file` when nothing is left. Never longer than what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub const MAX: usize = 255;
    const FALLBACK: &str = "file";

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if raw.chars().count() > Self::MAX {
            return Err(FieldError::new(field, format!("must be at most {} characters", Self::MAX)));
        }
        let mut name = String::with_capacity(raw.len());
        for c in raw.chars() {
            if c.is_whitespace() {
                if !name.ends_with(' ') {
                    name.push(' ');
                }
            } else if matches!(c, '/' | '\\') {
                name.push('_');
            } else if !c.is_control() && !is_invisible_format(c) {
                name.push(c);
            }
        }
        let name = name.trim_matches(|c| c == ' ' || c == '.');
        Ok(Self(if name.is_empty() { Self::FALLBACK.to_owned() } else { name.to_owned() }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn schema() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(Self::MAX))
            .description(Some("Stored without path separators, control or invisible formatting characters."))
    }
}

/// Unicode's bidirectional controls, zero-width characters and the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// A declared content type, `type/subtype` (RFC 6838's restricted names, no parameters), in
/// lower case as it is stored and compared with the uploaded object's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType(String);

impl ContentType {
    pub const MAX: usize = 255;
    const PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$";

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let refused = || FieldError::new(field, "must be a media type such as `application/pdf`, without parameters");
        if raw.len() > Self::MAX {
            return Err(FieldError::new(field, format!("must be at most {} characters", Self::MAX)));
        }
        let (kind, subtype) = raw.split_once('/').ok_or_else(refused)?;
        let restricted_name = |part: &str| {
            part.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
        };
        if !(restricted_name(kind) && restricted_name(subtype)) {
            return Err(refused());
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn schema() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(3))
            .max_length(Some(Self::MAX))
            .pattern(Some(Self::PATTERN))
    }
}

/// `Content-Disposition` for downloading `name` (RFC 6266): an ASCII `filename` for old clients
/// and the exact name, percent-encoded UTF-8, as `filename*` (RFC 8187), which clients prefer.
pub fn content_disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        // RFC 8187's attr-char is sent as is; every other byte percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> String {
        FileName::parse("name", raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn names_lose_paths_controls_and_invisible_characters() {
        assert_eq!(name("Brand book v2.pdf"), "Brand book v2.pdf");
        assert_eq!(name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(name("C:\\Users\\me\\cut.mov"), "C:_Users_me_cut.mov");
        assert_eq!(name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        assert_eq!(name("a\u{0000}b\r\nc\td"), "ab c d");
        assert_eq!(name("  spaced   out  .txt "), "spaced out .txt");
        assert_eq!(name("..."), "file");
        assert_eq!(name("\u{200B}"), "file");
        assert_eq!(name("Ünïcödé 設計.png"), "Ünïcödé 設計.png");
        assert!(FileName::parse("name", "").is_err());
        assert!(FileName::parse("name", &"a".repeat(256)).is_err());
        assert_eq!(name(&"é".repeat(255)).chars().count(), 255);
    }

    #[test]
    fn content_types_are_plain_media_types_in_lower_case() {
        let parse = |raw: &str| ContentType::parse("content_type", raw).map(|t| t.as_str().to_owned());
        assert_eq!(parse("Application/PDF").unwrap(), "application/pdf");
        assert_eq!(parse("image/svg+xml").unwrap(), "image/svg+xml");
        for refused in ["pdf", "text/plain; charset=utf-8", "/x", "x/", "a/b/c", "te xt/plain", "ß/x", ""] {
            assert!(parse(refused).is_err(), "{refused:?} accepted");
        }
    }

    #[test]
    fn a_download_carries_the_name_for_old_and_new_clients() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("Q3 \"final\" ü.pdf"),
            "attachment; filename=\"Q3 _final_ _.pdf\"; filename*=UTF-8''Q3%20%22final%22%20%C3%BC.pdf"
        );
        assert!(!content_disposition("a;b\\c").contains('\\'));
    }
}
