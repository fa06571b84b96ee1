//! `${NAME}` / `${NAME:-default}` expansion in the string values of a parsed config.
//!
//! In: the parsed TOML document (spans kept, for error messages). Out: the same
//! document with every string value expanded, or the key path of the value that
//! could not be. Expansion happens after parsing, so a value holding `"`, a
//! newline or `]\n[mqtt]` stays one string, and a `${X}` in a comment, a key or
//! a number is left alone.
//!
//! `$$` stands for a literal `$`. An unset variable without a default is an
//! error that names it and the key, so a box never starts with half a configuration.

use std::borrow::Cow;

use toml::de::{DeTable, DeValue};

/// The key path of a value that could not be expanded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    pub key: String,
    pub message: String,
}

/// Looks up one environment variable (the process environment, or a stand-in in tests).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands environment references in every string value of `table`, looked up by `env`.
pub fn expand_env(table: &mut DeTable<'_>, env: Lookup) -> Result<(), EnvError> {
    expand_table(table, "", env)
}

fn expand_table(table: &mut DeTable<'_>, path: &str, lookup: Lookup) -> Result<(), EnvError> {
    for (key, value) in table.iter_mut() {
        let key = if path.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{path}.{}", key.get_ref())
        };
        expand_value(value.get_mut(), &key, lookup)?;
    }
    Ok(())
}

fn expand_value(value: &mut DeValue<'_>, path: &str, lookup: Lookup) -> Result<(), EnvError> {
    match value {
        DeValue::String(s) => {
            if s.contains('$') {
                let expanded = expand_with(s, lookup).map_err(|message| EnvError {
                    key: path.to_string(),
                    message,
                })?;
                *s = Cow::Owned(expanded);
            }
        }
        DeValue::Table(t) => expand_table(t, path, lookup)?,
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                // `camera[gate]` like the rest of the config's messages, when the element has an id.
                let label = match item.get_ref() {
                    DeValue::Table(t) => match t.get("id").map(|v| v.get_ref()) {
                        Some(DeValue::String(id)) if !id.contains('$') => id.to_string(),
                        _ => i.to_string(),
                    },
                    _ => i.to_string(),
                };
                expand_value(item.get_mut(), &format!("{path}[{label}]"), lookup)?;
            }
        }
        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) | DeValue::Datetime(_) => {}
    }
    Ok(())
}

/// Expands the references in one string value.
fn expand_with(text: &str, lookup: Lookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$$` for a literal `$`)".to_string())?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{inner}}}` is not a valid environment reference"
                ));
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as `${{{name}}}`; use `${{{name}:-default}}` for a default)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("1884".into()),
            "QUOTE" => Some("pa\"ss = \"x".into()),
            "NEWLINE" => Some("line1\nline2".into()),
            "INJECT" => Some("x\"\n]\n[mqtt]\nurl = \"mqtt://evil\"\n".into()),
            _ => None,
        }
    }

    /// Parses `text`, expands it with [`lookup`] and gives back the document.
    fn expanded(text: &str) -> Result<toml::Table, EnvError> {
        let mut doc = DeTable::parse(text).unwrap();
        expand_table(doc.get_mut(), "", &lookup)?;
        let de = toml::de::Deserializer::from(doc);
        Ok(serde::Deserialize::deserialize(de).unwrap())
    }

    #[test]
    fn expands_set_default_and_literal() {
        let s = expand_with("a=${PORT} b=${NOPE:-x} c=$$ d=$e", &lookup).unwrap();
        assert_eq!(s, "a=1884 b=x c=$ d=$e");
    }

    #[test]
    fn errors_name_the_key_path_and_the_variable() {
        for (text, key, needle) in [
            (
                "[mqtt]\npassword = \"${MQTT_PASS}\"",
                "mqtt.password",
                "MQTT_PASS",
            ),
            (
                "[[camera]]\nid = \"gate\"\nurl = \"rtsp://${CAM_HOST}/1\"",
                "camera[gate].url",
                "CAM_HOST",
            ),
            ("[[camera]]\nurl = \"${CAM}\"", "camera[0].url", "CAM"),
            ("x = { y = [\"a\", \"${Q}\"] }", "x.y[1]", "Q"),
            ("[mqtt]\nport = \"${PORT\"", "mqtt.port", "unterminated"),
            ("[mqtt]\nurl = \"${A B}\"", "mqtt.url", "not a valid"),
        ] {
            let e = expanded(text).unwrap_err();
            assert_eq!(e.key, key, "{text}");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn values_with_quotes_newlines_or_tables_stay_one_string() {
        let t = expanded(
            "[mqtt]\nurl = \"mqtt://h:1\"\npassword = \"${INJECT}\"\nuser = \"${QUOTE}\"\nnote = '''${NEWLINE}'''\n",
        )
        .unwrap();
        let mqtt = t["mqtt"].as_table().unwrap();
        assert_eq!(mqtt.len(), 4, "{mqtt:?}");
        assert_eq!(mqtt["url"].as_str(), Some("mqtt://h:1"));
        assert_eq!(
            mqtt["password"].as_str(),
            Some("x\"\n]\n[mqtt]\nurl = \"mqtt://evil\"\n")
        );
        assert_eq!(mqtt["user"].as_str(), Some("pa\"ss = \"x"));
        assert_eq!(mqtt["note"].as_str(), Some("line1\nline2"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn comments_keys_and_numbers_are_not_expanded() {
        let t =
            expanded("# uses ${UNSET_IN_COMMENT}\n[mqtt] # ${ALSO}\nport = 1883 # ${X}\n").unwrap();
        assert_eq!(t["mqtt"]["port"].as_integer(), Some(1883));
    }

    proptest::proptest! {
        #[test]
        fn any_value_expands_to_itself_as_one_string(v in "(?s).{1,60}") {
            let text = "[mqtt]\nurl = \"${V}\"\nport = 1\n";
            let mut doc = DeTable::parse(text).unwrap();
            let value = v.clone();
            expand_table(doc.get_mut(), "", &move |n: &str| (n == "V").then(|| value.clone()))
                .unwrap();
            let t: toml::Table =
                serde::Deserialize::deserialize(toml::de::Deserializer::from(doc)).unwrap();
            proptest::prop_assert_eq!(t["mqtt"]["url"].as_str(), Some(v.as_str()));
            proptest::prop_assert_eq!(t["mqtt"].as_table().unwrap().len(), 2);
            proptest::prop_assert_eq!(t.len(), 1);
        }

        #[test]
        fn any_string_value_expands_or_fails_cleanly(s in "(?s).{0,60}") {
            let _ = expand_with(&s, &lookup);
        }
    }
}
