//! Parse, don't validate: request fields become these types or a field error, so handlers only
//! ever hold valid values.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::error::{ApiError, FieldError};

// Each type's rules, as the OpenAPI document states them: the same limits the parsers enforce
// (their constants), and patterns that say what the parsers check character by character.
// schemathesis checks the two agree, sending what the document allows.

/// One line with at least one character that is not white space, no control characters.
const NAME_PATTERN: &str =
    r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";
/// Any text without control characters but line breaks and tabs.
const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";
/// As `TEXT_PATTERN`, with at least one character that is not white space.
const NON_BLANK_TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

fn string_schema(max_length: usize) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(max_length))
}

fn nullable(schema: ObjectBuilder) -> ObjectBuilder {
    schema.schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// Collects every field error of a request, so the caller can fix them all at once, without
/// ever making up a value for a field that did not parse:
///
/// ```ignore
/// let mut v = Validator::default();
/// let name = v.check(Name::parse("name", &input.name));
/// let email = v.check(Email::parse("email", &input.email));
/// let (name, email) = v.finish(|| Some((name?, email?)))?;
/// ```
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// The parsed value, or `None` with its error recorded.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|error| self.errors.push(error)).ok()
    }

    /// Records a rule the request broke that no parser states (e.g. one field against another).
    pub fn refuse(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Every error recorded, or the valid request `assemble` makes of the checked values (each
    /// `Some` when nothing was recorded).
    pub fn finish<T>(self, assemble: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        if !self.errors.is_empty() {
            return Err(ApiError::Validation(self.errors));
        }
        assemble().ok_or_else(|| ApiError::internal("a checked field was missing although none failed"))
    }
}

fn has_control_chars(value: &str, allow_newlines: bool) -> bool {
    value.chars().any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

/// A short single-line name or title: trimmed, 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The field's schema in the OpenAPI document (`#[schema(schema_with = Name::schema)]`).
    pub fn schema() -> ObjectBuilder {
        string_schema(Self::MAX).min_length(Some(1)).pattern(Some(NAME_PATTERN))
    }
}

/// Free text (descriptions, notes, comment bodies): at most 10 000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    pub fn schema() -> ObjectBuilder {
        string_schema(Self::MAX).pattern(Some(TEXT_PATTERN))
    }

    /// The schema of a field parsed with `parse_non_blank`.
    pub fn non_blank_schema() -> ObjectBuilder {
        string_schema(Self::MAX).min_length(Some(1)).pattern(Some(NON_BLANK_TEXT_PATTERN))
    }
}

/// An e-mail address, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// RFC 3696's longest address (a local part of 64 and a domain of 255 with the @).
    pub const MAX: usize = 320;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let valid = value.len() <= Self::MAX
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

    pub fn schema() -> ObjectBuilder {
        string_schema(Self::MAX).format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
    }

    /// The schema of an optional address (`null` or absent when there is none).
    pub fn optional_schema() -> ObjectBuilder {
        nullable(Self::schema())
    }
}

/// An absolute http(s) URL of at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    pub const MAX: usize = 2048;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
        let valid = value.len() <= Self::MAX
            && rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(Self(value.to_owned())) } else { Err(FieldError::new(field, "must be an http(s) URL")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The schema of an http(s) URL field (also the billing redirects, which check more).
    pub fn schema() -> ObjectBuilder {
        string_schema(Self::MAX).format(Some(SchemaFormat::Custom("uri".into())))
    }

    /// The schema of an optional URL (`null` or absent when there is none).
    pub fn optional_schema() -> ObjectBuilder {
        nullable(Self::schema())
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
        let name = v.check(Name::parse("name", ""));
        let email = v.check(Email::parse("email", "nope"));
        v.refuse("role", "must not be owner");
        let Err(ApiError::Validation(errors)) = v.finish(|| Some((name?, email?))) else { panic!("expected errors") };
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["name", "email", "role"]);
        let mut v = Validator::default();
        let name = v.check(Name::parse("name", " Acme "));
        assert_eq!(v.finish(|| name).unwrap().as_str(), "Acme");
    }
}
