//! `${NAME}` / `${NAME:-default}` expansion in the config text.
//!
//! `$$` stands for a literal `$`. An unset variable without a default is an
//! error that names it, so a box never starts with half a configuration.

/// Expands environment references in `text` using the process environment.
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_with(text, |name| std::env::var(name).ok())
}

fn expand_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
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
                .ok_or_else(|| "unterminated `${` in config".to_string())?;
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
        (name == "PORT").then(|| "1884".to_string())
    }

    #[test]
    fn expands_set_default_and_literal() {
        let s = expand_with("a=${PORT} b=${NOPE:-x} c=$$ d=$e", lookup).unwrap();
        assert_eq!(s, "a=1884 b=x c=$ d=$e");
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        let e = expand_with("url = \"${BROKER}\"", lookup).unwrap_err();
        assert!(e.contains("BROKER"), "{e}");
    }

    #[test]
    fn unterminated_is_an_error() {
        assert!(expand_with("x = ${PORT", lookup).is_err());
    }
}
