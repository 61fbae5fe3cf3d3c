//! [`Fields`]: the extra members of an outgoing body, borrowed where they can be.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Members of an outgoing JSON object that its struct does not name (configured `params`, a
/// caller's pass-through fields), in the order they were added. Used with `#[serde(flatten)]`:
/// the struct's own fields come first, these after. A key is added once ([`Fields::insert`]
/// replaces in place), and never one the struct names itself: the encoder that fills it knows
/// which keys those are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields<'a>(Vec<(Cow<'a, str>, Cow<'a, Value>)>);

impl<'a> Fields<'a> {
    /// No fields.
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    /// Adds `key` (or replaces its value where it is already there, keeping its place).
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, Value>>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Adds `key` only where it is not there yet.
    pub fn insert_new(&mut self, key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, Value>>) {
        let key = key.into();
        if !self.contains(&key) {
            self.0.push((key, value.into()));
        }
    }

    /// Takes `key` out.
    pub fn remove(&mut self, key: &str) -> Option<Cow<'a, Value>> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    /// Whether `key` is there.
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Keeps the members `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v.as_ref())?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_in_place_and_keeps_order() {
        let mut f = Fields::new();
        f.insert("b", Cow::Owned(json!(1)));
        f.insert("a", Cow::Owned(json!(2)));
        f.insert("b", Cow::Owned(json!(3)));
        f.insert_new("a", Cow::Owned(json!(4)));
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"b":3,"a":2}"#);
        assert_eq!(f.remove("b").as_deref(), Some(&json!(3)));
        assert!(!f.contains("b"));
    }
}
