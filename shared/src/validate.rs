//! Parse, don't validate: request fields become these types or a field error, so handlers only
//! ever hold valid values.

use crate::error::{ApiError, FieldError};

/// Collects every field error of a request, so the caller can fix them all at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the parsed value, or records the error and returns a placeholder that `finish`
    /// guarantees is never used.
    pub fn check<T: Default>(&mut self, result: Result<T, FieldError>) -> T {
        result.unwrap_or_else(|error| {
            self.errors.push(error);
            T::default()
        })
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.errors)) }
    }
}

fn has_control_chars(value: &str, allow_newlines: bool) -> bool {
    value.chars().any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

/// A short single-line name or title: trimmed, 1 to 200 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX: usize = 200;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if value.chars().count() > Self::MAX {
            return Err(FieldError::new(field, format!("must be at most {} characters", Self::MAX)));
        }
        if has_control_chars(value, false) {
            return Err(FieldError::new(field, "must be a single line without control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text (descriptions, notes, comment bodies): at most 10 000 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    pub const MAX: usize = 10_000;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX {
            return Err(FieldError::new(field, format!("must be at most {} characters", Self::MAX)));
        }
        if has_control_chars(raw, true) {
            return Err(FieldError::new(field, "must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Like `parse`, but blank is an error (a comment must say something).
    pub fn parse_non_blank(field: &str, raw: &str) -> Result<Self, FieldError> {
        if raw.trim().is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        Self::parse(field, raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address, compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let valid = value.len() <= 320
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if valid { Ok(Self(value.to_owned())) } else { Err(FieldError::new(field, "must be an e-mail address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL of at most 2048 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
        let valid = value.len() <= 2048
            && rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(Self(value.to_owned())) } else { Err(FieldError::new(field, "must be an http(s) URL")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses an optional field with `parse` when present.
pub fn optional<T>(
    value: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    value.map(parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("name", "  Acme  ").unwrap().as_str(), "Acme");
        assert!(Name::parse("name", "   ").is_err());
        assert!(Name::parse("name", &"x".repeat(201)).is_err());
        assert!(Name::parse("name", &"é".repeat(200)).is_ok(), "limits count characters, not bytes");
        assert!(Name::parse("name", "two\nlines").is_err());
    }

    #[test]
    fn text_allows_newlines_but_not_other_controls() {
        assert!(Text::parse("d", "line one\nline two\ttab").is_ok());
        assert!(Text::parse("d", "bell\u{7}").is_err());
        assert!(Text::parse_non_blank("body", " \n ").is_err());
        assert!(Text::parse("d", &"x".repeat(10_001)).is_err());
    }

    #[test]
    fn emails() {
        for good in ["a@b.io", "first.last+tag@sub.example.com"] {
            assert!(Email::parse("email", good).is_ok(), "{good}");
        }
        for bad in ["", "a", "a@b", "@b.io", "a@@b.io", "a b@c.io", "a@.io", "a@b.io."] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(HttpUrl::parse("url", "https://files.example.com/x.pdf").is_ok());
        for bad in ["ftp://x", "https://", "javascript:alert(1)", "https:///path", "https://a b"] {
            assert!(HttpUrl::parse("url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_validator_reports_every_error() {
        let mut v = Validator::default();
        let _ = v.check(Name::parse("name", ""));
        let _ = v.check(Email::parse("email", "nope"));
        let Err(ApiError::Validation(errors)) = v.finish() else { panic!("expected errors") };
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["name", "email"]);
    }
}
