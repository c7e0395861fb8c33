//! A builder for the JSON form of a decoded message that follows Go's `omitempty` rules.
//!
//! Go marshals a non-pointer field to protobuf even when it holds the zero value, so a
//! decoded `Some("")` or `Some(0)` usually means "unset", exactly what `omitempty` leaves
//! out of JSON. Pointer fields (`*int32`, `*bool`, `*string`) are written only when set, so
//! their zero values are real values and are kept: each setter says which rule it follows.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Default)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    pub fn new() -> Self {
        Self::default()
    }

    /// A non-pointer string: empty means unset.
    pub fn string(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(s) = value.filter(|s| !s.is_empty()) {
            self.0.insert(key.into(), Value::String(s));
        }
        self
    }

    /// A `*string`: an empty string is a value.
    pub fn string_ptr(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(s) = value {
            self.0.insert(key.into(), Value::String(s));
        }
        self
    }

    /// A non-pointer integer: zero means unset.
    pub fn int(mut self, key: &str, value: Option<impl Into<i64>>) -> Self {
        if let Some(n) = value.map(Into::into).filter(|n| *n != 0) {
            self.0.insert(key.into(), Value::from(n));
        }
        self
    }

    /// A `*int32` / `*int64`: zero is a value.
    pub fn int_ptr(mut self, key: &str, value: Option<impl Into<i64>>) -> Self {
        if let Some(n) = value {
            self.0.insert(key.into(), Value::from(n.into()));
        }
        self
    }

    /// A non-pointer bool: false means unset.
    pub fn flag(mut self, key: &str, value: Option<bool>) -> Self {
        if value == Some(true) {
            self.0.insert(key.into(), Value::Bool(true));
        }
        self
    }

    /// A `*bool`: false is a value.
    pub fn flag_ptr(mut self, key: &str, value: Option<bool>) -> Self {
        if let Some(b) = value {
            self.0.insert(key.into(), Value::Bool(b));
        }
        self
    }

    pub fn strings(mut self, key: &str, values: Vec<String>) -> Self {
        if !values.is_empty() {
            self.0.insert(
                key.into(),
                Value::Array(values.into_iter().map(Value::String).collect()),
            );
        }
        self
    }

    pub fn string_map(mut self, key: &str, values: BTreeMap<String, String>) -> Self {
        if !values.is_empty() {
            let map = values
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            self.0.insert(key.into(), Value::Object(map));
        }
        self
    }

    /// `map[string][]byte`: values base64-encoded, as `encoding/json` writes `[]byte`.
    pub fn bytes_map(mut self, key: &str, values: BTreeMap<String, Vec<u8>>) -> Self {
        if !values.is_empty() {
            let map = values
                .into_iter()
                .map(|(k, v)| (k, Value::String(base64(&v))))
                .collect();
            self.0.insert(key.into(), Value::Object(map));
        }
        self
    }

    /// A nested value; `None` and empty objects are left out (Go writes nested structs
    /// even when empty, and the JSON of an empty `omitempty` struct pointer is absent).
    pub fn value(mut self, key: &str, value: Option<Value>) -> Self {
        match value {
            None => {}
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(v) => {
                self.0.insert(key.into(), v);
            }
        }
        self
    }

    /// A nested struct that is a value even when empty (e.g. `emptyDir: {}`).
    pub fn value_kept(mut self, key: &str, value: Option<Value>) -> Self {
        if let Some(v) = value {
            self.0.insert(key.into(), v);
        }
        self
    }

    pub fn list(mut self, key: &str, values: Vec<Value>) -> Self {
        if !values.is_empty() {
            self.0.insert(key.into(), Value::Array(values));
        }
        self
    }

    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// Converts each element of a repeated message field.
pub fn each<T>(items: Vec<T>, f: impl Fn(T) -> Value) -> Vec<Value> {
    items.into_iter().map(f).collect()
}

/// Standard base64 with padding, as Go's `encoding/json` encodes `[]byte`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_values_follow_omitempty_and_pointers_keep_them() {
        let v = JsonObject::new()
            .string("name", Some(String::new()))
            .string_ptr("class", Some(String::new()))
            .int("nodePort", Some(0))
            .int_ptr("replicas", Some(0))
            .flag("hostNetwork", Some(false))
            .flag_ptr("immutable", Some(false))
            .value("empty", Some(json!({})))
            .value_kept("emptyDir", Some(json!({})))
            .strings("finalizers", vec![])
            .build();
        assert_eq!(
            v,
            json!({"class": "", "replicas": 0, "immutable": false, "emptyDir": {}})
        );
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"s3cret"), "czNjcmV0");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
